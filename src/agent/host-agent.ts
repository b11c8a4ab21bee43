/**
 * `zenith agent`: runs on a hypervisor host. Enrolls once with a one-time
 * token (keeping the credentials it receives, mode 0600), then keeps one
 * self-re-establishing WebSocket to the control plane: it answers driver
 * calls with its local QEMU driver, pushes inventory changes and sends a
 * heartbeat with the host's facts. The VMs are QEMU processes that outlive
 * the agent: a restarted agent re-attaches to them.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import type { Clock } from '../core/clock.js';
import { errorFromBody, isZenithError, ZenithError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { isAgentMethod, type FromAgent, type ToAgent } from '../hypervisors/agent/agent-link.js';
import type { ActionContext, CloneOptions, MigrateOptions, VmSpec } from '../hypervisors/driver.js';
import {
  QemuDriver,
  type IncomingEndpoint,
  type MigrationPackage,
} from '../hypervisors/qemu/qemu-driver.js';

export interface HostAgentOptions {
  server: string;
  stateDir: string;
  /** Needed only for the first start. */
  enrollmentToken?: string | undefined;
  storageRoots: string[];
  accelerator: 'auto' | 'kvm' | 'tcg';
  hostName?: string | undefined;
  /** The address this host receives live migrations on (default 127.0.0.1). */
  migrationAddress?: string | undefined;
  heartbeatMs?: number;
  clock: Clock;
  logger: Logger;
}

interface Credentials {
  server: string;
  agentId: string;
  token: string;
}

export class HostAgent {
  readonly #options: HostAgentOptions;
  #driver: QemuDriver | undefined;
  #socket: WebSocket | undefined;
  #stopped = false;
  readonly #abort = new AbortController();

  constructor(options: HostAgentOptions) {
    this.#options = options;
  }

  /** Enrolls if needed, starts the driver, and keeps the channel up until stop(). */
  async run(): Promise<void> {
    const credentials = await this.#credentials();
    const driver = new QemuDriver({
      stateDir: join(this.#options.stateDir, 'qemu'),
      storageRoots: this.#options.storageRoots,
      accelerator: this.#options.accelerator,
      ...(this.#options.hostName ? { hostName: this.#options.hostName } : {}),
      clock: this.#options.clock,
      logger: this.#options.logger,
    });
    await driver.connect();
    this.#driver = driver;
    let backoffMs = 500;
    while (!this.#stopped) {
      const opened = await this.#session(credentials, driver).catch((error: unknown) => {
        this.#options.logger.warn({ err: (error as Error).message }, 'control plane unreachable');
        return false;
      });
      if (this.#stopped) break;
      backoffMs = opened ? 500 : Math.min(backoffMs * 2, 30_000);
      await this.#options.clock.sleep(backoffMs, this.#abort.signal).catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.#socket?.close(1000, 'agent stopping');
    await this.#driver?.close();
  }

  async #credentials(): Promise<Credentials> {
    const file = join(this.#options.stateDir, 'credentials.json');
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Credentials;
    if (!this.#options.enrollmentToken)
      throw new ZenithError(
        'ZEN_UNAUTHENTICATED',
        'this agent is not enrolled yet: pass --token with a one-time enrollment token',
      );
    const response = await fetch(`${this.#options.server}/api/v1/agents/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        enrollmentToken: this.#options.enrollmentToken,
        hostname: this.#options.hostName ?? hostname(),
      }),
    }).catch((error: unknown) => {
      throw new ZenithError(
        'ZEN_CONNECTION_FAILED',
        `cannot reach ${this.#options.server}: ${(error as Error).message}`,
      );
    });
    const body = (await response.json()) as { agent?: { id: string }; token?: string };
    if (!response.ok || !body.agent || !body.token)
      throw errorFromBody(body, `enrollment failed (HTTP ${response.status})`);
    const credentials: Credentials = {
      server: this.#options.server,
      agentId: body.agent.id,
      token: body.token,
    };
    mkdirSync(this.#options.stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(file, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    this.#options.logger.info({ agentId: credentials.agentId }, 'enrolled');
    return credentials;
  }

  /** One channel's life; resolves true if it was ever open. */
  #session(credentials: Credentials, driver: QemuDriver): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const url = `${this.#options.server.replace(/^http/, 'ws')}/api/v1/agents/channel`;
      const socket = new WebSocket(url, {
        headers: { authorization: `Bearer ${credentials.token}` },
      });
      this.#socket = socket;
      let opened = false;
      const watching = new AbortController();
      const send = (message: FromAgent) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
      };
      let heartbeat: NodeJS.Timeout | undefined;
      const consoles = new ConsoleRelays(driver);
      // Calls under way, so the control plane can cancel one (a cancelled task).
      const calls = new Map<number, AbortController>();
      socket.on('open', () => {
        opened = true;
        this.#options.logger.info('channel open');
        const beat = () =>
          void Promise.all([this.#hostFacts(driver), driver.allMetrics()]).then(
            ([facts, metrics]) => send({ type: 'heartbeat', facts, metrics }),
            (error: unknown) =>
              this.#options.logger.warn({ err: (error as Error).message }, 'heartbeat failed'),
          );
        beat();
        heartbeat = setInterval(beat, this.#options.heartbeatMs ?? 5000);
        void (async () => {
          for await (const delta of driver.watch(watching.signal)) send({ type: 'delta', delta });
        })();
      });
      socket.on('message', (data: Buffer) => {
        let message: ToAgent;
        try {
          message = JSON.parse(data.toString('utf8')) as ToAgent;
        } catch {
          return;
        }
        if (message.type === 'call') {
          const controller = new AbortController();
          calls.set(message.id, controller);
          const context: ActionContext = {
            signal: AbortSignal.any([this.#abort.signal, controller.signal]),
            progress: (update) => send({ type: 'progress', id: message.id, update }),
          };
          void this.#answer(driver, message, context).then((result) => {
            calls.delete(message.id);
            send(result);
          });
        } else if (message.type === 'cancel') calls.get(message.id)?.abort();
        else consoles.handle(message, send);
      });
      socket.on('unexpected-response', (_request, response) => {
        reject(
          new ZenithError(
            response.statusCode === 401 ? 'ZEN_UNAUTHENTICATED' : 'ZEN_CONNECTION_FAILED',
            `the control plane refused the channel (HTTP ${response.statusCode})`,
          ),
        );
      });
      socket.on('error', (error) => {
        if (!opened) reject(error);
      });
      socket.on('close', () => {
        clearInterval(heartbeat);
        consoles.closeAll();
        watching.abort();
        resolve(opened);
      });
    });
  }

  async #answer(
    driver: QemuDriver,
    call: Extract<ToAgent, { type: 'call' }>,
    context: ActionContext,
  ): Promise<FromAgent> {
    try {
      if (!isAgentMethod(call.method))
        throw new ZenithError(
          'ZEN_UNSUPPORTED',
          `the agent has no method '${String(call.method)}'`,
        );
      const [first, second] = call.args;
      const id = String(first);
      let value: unknown;
      switch (call.method) {
        case 'discover':
          value = await driver.discover();
          break;
        case 'createVm':
          value = await driver.createVm(first as VmSpec, context);
          break;
        case 'stopVm':
          value = await driver.stopVm(id, context, second ?? {});
          break;
        case 'deleteVm':
          value = await driver.deleteVm(id, context);
          break;
        case 'cloneVm':
          value = await driver.cloneVm(id, second as CloneOptions, context);
          break;
        case 'listSnapshots':
          value = await driver.listSnapshots(id);
          break;
        case 'createSnapshot':
          value = await driver.createSnapshot(id, String(second), context);
          break;
        case 'revertSnapshot':
          value = await driver.revertSnapshot(id, String(second), context);
          break;
        case 'deleteSnapshot':
          value = await driver.deleteSnapshot(id, String(second), context);
          break;
        case 'exportVm':
          value = await driver.exportVm(id);
          break;
        case 'prepareIncoming':
          value = await driver.prepareIncoming(
            first as MigrationPackage,
            this.#options.migrationAddress ?? '127.0.0.1',
            second ?? {},
          );
          break;
        case 'incomingState':
          value = await driver.incomingState(id);
          break;
        case 'outgoingState':
          value = await driver.outgoingState(id);
          break;
        case 'sendMigration': {
          const [, incoming, options] = call.args as [
            string,
            IncomingEndpoint,
            MigrateOptions & { multifdChannels?: number },
          ];
          value = await driver.sendMigration(id, incoming, options ?? {}, context);
          break;
        }
        case 'finishIncoming':
          value = await driver.finishIncoming(id);
          break;
        case 'cleanupOutgoing':
          value = await driver.cleanupOutgoing(id);
          break;
        case 'abortIncoming':
          value = await driver.abortIncoming(id);
          break;
        default:
          value = await driver[call.method](id, context);
      }
      return { type: 'result', id: call.id, ok: true, value };
    } catch (error) {
      const coded = isZenithError(error)
        ? error
        : new ZenithError('ZEN_DRIVER_ERROR', (error as Error).message);
      return {
        type: 'result',
        id: call.id,
        ok: false,
        error: { code: coded.code, message: coded.message, details: coded.details },
      };
    }
  }

  async #hostFacts(driver: QemuDriver): Promise<Record<string, unknown>> {
    const snapshot = await driver.discover();
    const host = snapshot.objects.find((o) => o.kind === 'host');
    return { ...(host?.facts ?? {}), 'agent.vms': snapshot.objects.length - 1 };
  }
}

/** The consoles the control plane opened through this agent: local sockets relayed as base64 messages. */
class ConsoleRelays {
  readonly #streams = new Map<number, Duplex>();

  constructor(private readonly driver: QemuDriver) {}

  handle(
    message: Exclude<ToAgent, { type: 'call' } | { type: 'cancel' }>,
    send: (message: FromAgent) => void,
  ): void {
    if (message.type === 'console-open') {
      this.driver
        .openConsole(message.vmId, message.kind)
        .then((stream) => {
          this.#streams.set(message.stream, stream);
          stream.on('data', (chunk: Buffer) =>
            send({ type: 'console-data', stream: message.stream, data: chunk.toString('base64') }),
          );
          stream.on('close', () => {
            this.#streams.delete(message.stream);
            send({ type: 'console-close', stream: message.stream });
          });
          stream.on('error', () => stream.destroy());
          send({ type: 'console-opened', stream: message.stream });
        })
        .catch((error: unknown) => {
          const coded = isZenithError(error)
            ? error
            : new ZenithError('ZEN_DRIVER_ERROR', (error as Error).message);
          send({
            type: 'console-close',
            stream: message.stream,
            error: { code: coded.code, message: coded.message },
          });
        });
    } else if (message.type === 'console-data') {
      this.#streams.get(message.stream)?.write(Buffer.from(message.data, 'base64'));
    } else {
      this.#streams.get(message.stream)?.destroy();
      this.#streams.delete(message.stream);
    }
  }

  closeAll(): void {
    for (const stream of this.#streams.values()) stream.destroy();
    this.#streams.clear();
  }
}
