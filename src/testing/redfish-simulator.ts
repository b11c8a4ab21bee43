/**
 * A Redfish service SIMULATOR of our own, for tests and benches: no Redfish
 * emulator installs here (sushy-tools and DMTF's mockup server are PyPI-only).
 * It serves the DMTF resources a BMC offers — service root, SessionService
 * (sessions with X-Auth-Token, and Basic authentication), Systems with
 * ComputerSystem.Reset and a boot override, Managers with VirtualMedia, Chassis
 * with Thermal and Power (and, when asked, the newer Sensors), EventService — over HTTPS with a certificate made
 * for it. Real Redfish clients (python3-sushy, redfishtool) read and power its
 * systems (test/testing/redfish-simulator-clients.test.ts), so it is not tuned
 * to Zenith's own client only.
 *
 * Power actions call hooks, so a test can make a "machine" start and stop
 * (a process now; a zenith agent in its own namespaces later). Misbehaviours
 * for the bad-BMC tests: 'liar' (accepts power-off, stays on), and per-request
 * faults (garbage, truncated JSON, a reply that never comes, a slow reply).
 */
import { execFile } from 'node:child_process';
import { randomUUID, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { routeMachine } from './redfish-simulator-machine-routes.js';
import {
  collection,
  errorBody,
  eventService,
  serviceRoot,
  session,
  sessionService,
  systemsCollection,
  type SimulatedMachineState,
} from './redfish-simulator-resources.js';

export type { SimulatedMachineState } from './redfish-simulator-resources.js';

export interface PowerHooks {
  /** The machine is to start (On, and the second half of a restart or cycle). */
  powerOn?(machineId: string): Promise<void> | void;
  /** The machine is to stop; `graceful` for GracefulShutdown. */
  powerOff?(machineId: string, graceful: boolean): Promise<void> | void;
}

export type Fault =
  { kind: 'garbage' } | { kind: 'truncated' } | { kind: 'hang' } | { kind: 'delay'; ms: number };

export interface RedfishSimulatorOptions {
  machines?: number;
  username?: string;
  password?: string;
  hooks?: PowerHooks;
  /** Initial power of every machine; default On. */
  power?: 'On' | 'Off';
  /** Chassis also offer the newer Sensors collection beside Thermal and Power. */
  sensorResources?: boolean;
}

export interface RedfishSimulator {
  url: string;
  /** SHA-256 thumbprint of its certificate, colon-separated upper-case hex. */
  thumbprint: string;
  certificatePem: string;
  username: string;
  password: string;
  machines: SimulatedMachineState[];
  machine(id: string): SimulatedMachineState;
  /** Accept power-off requests but leave the machines on (a lying BMC). */
  liar: boolean;
  /** Misbehave on requests whose path matches (until cleared with undefined). */
  fault(fault: Fault | undefined, path?: RegExp): void;
  /** Requests seen: method and path, in order. */
  requests: { method: string; path: string; authorization?: string }[];
  /** Open sessions (token → user). */
  sessions: Map<string, { id: string; user: string }>;
  close(): Promise<void>;
}

const run = promisify(execFile);

export async function startRedfishSimulator(
  options: RedfishSimulatorOptions = {},
): Promise<RedfishSimulator> {
  const dir = await mkdtemp(join(tmpdir(), 'zenith-redfish-sim-'));
  try {
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=Zenith Redfish simulator',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]);
    const key = await readFile(join(dir, 'key.pem'), 'utf8');
    const cert = await readFile(join(dir, 'cert.pem'), 'utf8');
    return await serve(options, key, cert);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function serve(
  options: RedfishSimulatorOptions,
  key: string,
  cert: string,
): Promise<RedfishSimulator> {
  const username = options.username ?? 'admin';
  const password = options.password ?? 'simulator-password';
  const hooks = options.hooks ?? {};
  const machines: SimulatedMachineState[] = Array.from(
    { length: options.machines ?? 1 },
    (_, n) => ({
      id: `System${n + 1}`,
      uuid: randomUUID(),
      serial: `ZS${String(100000 + n)}`,
      macs: [
        `52:54:00:5a:${hex(n >> 8)}:${hex(n & 0xff)}`,
        `52:54:00:5b:${hex(n >> 8)}:${hex(n & 0xff)}`,
      ],
      power: options.power ?? 'On',
      boot: { enabled: 'Disabled', target: 'None' },
      indicatorLed: 'Off',
      media: { inserted: false },
      sensors: { temperatureC: 41, fanRpm: 5400, watts: 180 },
    }),
  );
  const serviceUuid = randomUUID();
  const sessions = new Map<string, { id: string; user: string }>();
  const subscriptions = new Map<string, Record<string, unknown>>();
  let subscriptionCounter = 0;
  const faults: { fault: Fault; path: RegExp }[] = [];
  const requests: RedfishSimulator['requests'] = [];
  const sockets = new Set<Socket>();
  let sessionCounter = 0;
  const sim: RedfishSimulator = {
    url: '',
    thumbprint: new X509Certificate(cert).fingerprint256,
    certificatePem: cert,
    username,
    password,
    machines,
    machine: (id) => {
      const m = machines.find((x) => x.id === id);
      if (!m) throw new Error(`no simulated machine ${id}`);
      return m;
    },
    liar: false,
    fault: (fault, path = /.*/) => {
      faults.length = 0;
      if (fault) faults.push({ fault, path });
    },
    requests,
    sessions,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const setPower = async (m: SimulatedMachineState, on: boolean, graceful = false) => {
    if (on && m.power === 'Off') {
      await hooks.powerOn?.(m.id);
      m.power = 'On';
    } else if (!on && m.power === 'On') {
      await hooks.powerOff?.(m.id, graceful);
      m.power = 'Off';
    }
  };

  const reset = async (m: SimulatedMachineState, type: string) => {
    if (sim.liar && type !== 'On') return;
    switch (type) {
      case 'On':
      case 'ForceOn':
        return setPower(m, true);
      case 'ForceOff':
        return setPower(m, false);
      case 'GracefulShutdown':
        return setPower(m, false, true);
      case 'GracefulRestart':
      case 'ForceRestart':
      case 'PowerCycle':
        await setPower(m, false, type === 'GracefulRestart');
        return setPower(m, true);
      case 'PushPowerButton':
        return setPower(m, m.power === 'Off');
      default:
        return;
    }
  };

  const authorized = (request: IncomingMessage): string | undefined => {
    const token = request.headers['x-auth-token'];
    if (typeof token === 'string' && sessions.has(token)) return sessions.get(token)!.user;
    const basic = /^Basic (.+)$/i.exec(request.headers.authorization ?? '');
    if (basic) {
      const [user, ...rest] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':');
      if (user === username && rest.join(':') === password) return user;
    }
    return undefined;
  };

  const handle = async (
    request: IncomingMessage,
    response: ServerResponse,
    body: unknown,
  ): Promise<void> => {
    const method = request.method ?? 'GET';
    const path = decodeURIComponent(new URL(request.url ?? '/', 'https://sim').pathname).replace(
      /\/+$/,
      '',
    );
    const send = (status: number, doc?: unknown, headers: Record<string, string> = {}) => {
      const text = doc === undefined ? '' : JSON.stringify(doc);
      response.writeHead(status, {
        'odata-version': '4.0',
        ...(doc === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
        'content-length': String(Buffer.byteLength(text)),
        ...headers,
      });
      response.end(text);
    };
    const notFound = () => send(404, errorBody('ResourceMissingAtURI', `${path} does not exist`));
    const badMethod = () =>
      send(405, errorBody('ActionNotSupported', `${method} is not allowed on ${path}`));
    const get = (doc: unknown) =>
      method === 'GET' ? send(200, doc, { etag: etagOf(doc) }) : badMethod();

    if (path === '/redfish') return get({ v1: '/redfish/v1/' });
    if (path === '/redfish/v1') return get(serviceRoot(serviceUuid));
    if (path === '/redfish/v1/SessionService/Sessions' && method === 'POST') {
      const { UserName, Password } = (body ?? {}) as Record<string, unknown>;
      if (UserName !== username || Password !== password)
        return send(401, errorBody('NoValidSession', 'wrong user name or password'));
      sessionCounter += 1;
      const id = String(sessionCounter);
      const token = randomUUID().replaceAll('-', '');
      sessions.set(token, { id, user: username });
      return send(201, session(id, username), {
        'x-auth-token': token,
        location: `/redfish/v1/SessionService/Sessions/${id}`,
      });
    }
    const user = authorized(request);
    if (!user)
      return send(401, errorBody('NoValidSession', 'authentication is required'), {
        'www-authenticate': 'Basic realm="Redfish simulator"',
      });

    if (path === '/redfish/v1/SessionService') return get(sessionService());
    if (path === '/redfish/v1/SessionService/Sessions')
      return get(
        collection(
          '/redfish/v1/SessionService/Sessions',
          'SessionCollection',
          'Session Collection',
          [...sessions.values()].map((s) => `/redfish/v1/SessionService/Sessions/${s.id}`),
        ),
      );
    const sessionMatch = /^\/redfish\/v1\/SessionService\/Sessions\/([^/]+)$/.exec(path);
    if (sessionMatch) {
      const entry = [...sessions.entries()].find(([, s]) => s.id === sessionMatch[1]);
      if (!entry) return notFound();
      if (method === 'DELETE') {
        sessions.delete(entry[0]);
        return send(204);
      }
      return get(session(entry[1].id, entry[1].user));
    }
    if (path === '/redfish/v1/EventService') return get(eventService([...subscriptions.keys()]));
    if (path === '/redfish/v1/EventService/Actions/EventService.SubmitTestEvent')
      return method === 'POST' ? send(204) : badMethod();
    if (path === '/redfish/v1/EventService/Subscriptions') {
      if (method === 'POST') {
        const { Destination, EventTypes, Context } = (body ?? {}) as Record<string, unknown>;
        if (typeof Destination !== 'string' || !/^https?:\/\//.test(Destination))
          return send(400, errorBody('PropertyMissing', 'Destination must be an http(s) URI'));
        subscriptionCounter += 1;
        const id = String(subscriptionCounter);
        const doc = {
          '@odata.id': `${path}/${id}`,
          '@odata.type': '#EventDestination.v1_9_0.EventDestination',
          Id: id,
          Name: 'Event subscription',
          Destination,
          EventTypes: Array.isArray(EventTypes) ? EventTypes : ['StatusChange'],
          Context: typeof Context === 'string' ? Context : '',
          Protocol: 'Redfish',
        };
        subscriptions.set(id, doc);
        return send(201, doc, { location: `${path}/${id}` });
      }
      return get(
        collection(
          path,
          'EventDestinationCollection',
          'Event Subscriptions',
          [...subscriptions.keys()].map((id) => `${path}/${id}`),
        ),
      );
    }
    const subscriptionMatch = /^\/redfish\/v1\/EventService\/Subscriptions\/([^/]+)$/.exec(path);
    if (subscriptionMatch) {
      const doc = subscriptions.get(subscriptionMatch[1]!);
      if (!doc) return notFound();
      if (method === 'DELETE') {
        subscriptions.delete(subscriptionMatch[1]!);
        return send(204);
      }
      return get(doc);
    }
    if (path === '/redfish/v1/Systems') return get(systemsCollection(machines));
    if (path === '/redfish/v1/Managers')
      return get(
        collection(
          path,
          'ManagerCollection',
          'Manager Collection',
          machines.map((m) => `${path}/${m.id}`),
        ),
      );
    if (path === '/redfish/v1/Chassis')
      return get(
        collection(
          path,
          'ChassisCollection',
          'Chassis Collection',
          machines.map((m) => `${path}/${m.id}`),
        ),
      );

    const parts = path.split('/').slice(3); // Systems, System1, …
    const m = machines.find((x) => x.id === parts[1]);
    if (!m) return notFound();
    return routeMachine(
      m,
      parts,
      method,
      body,
      { get, send, notFound, badMethod },
      {
        reset,
        sensorResources: options.sensorResources === true,
      },
    );
  };

  const server: Server = createServer({ key, cert }, (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const path = new URL(request.url ?? '/', 'https://sim').pathname;
      requests.push({
        method: request.method ?? 'GET',
        path,
        ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
      });
      const active = faults.find((f) => f.path.test(path))?.fault;
      if (active?.kind === 'hang') return; // never answers; the client's deadline must end it
      if (active?.kind === 'garbage') {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0x22, 0x0a, 0x5d]));
        return;
      }
      if (active?.kind === 'truncated') {
        const text = JSON.stringify(serviceRoot(serviceUuid));
        response.writeHead(200, {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(text)),
        });
        // Half the promised body, then the connection ends: the reply is cut off mid-JSON.
        response.write(text.slice(0, text.length / 2), () => response.socket?.end());
        return;
      }
      let body: unknown;
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        response.writeHead(400, { 'content-type': 'application/json' });
        response.end(JSON.stringify(errorBody('MalformedJSON', 'the body is not JSON')));
        return;
      }
      // A hook that throws is the test's bug: it becomes a 500 the test will see, not a crash.
      const answer = () => {
        handle(request, response, body).catch((error: unknown) => {
          if (!response.headersSent)
            response.writeHead(500, { 'content-type': 'application/json' });
          response.end(JSON.stringify(errorBody('InternalError', String(error))));
        });
      };
      if (active?.kind === 'delay') setTimeout(answer, active.ms);
      else answer();
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('secureConnection', (socket) => {
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  sim.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return sim;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function etagOf(doc: unknown): string {
  let hash = 0;
  for (const ch of JSON.stringify(doc)) hash = (hash * 31 + ch.charCodeAt(0)) | 0;
  return `W/"${(hash >>> 0).toString(16)}"`;
}
