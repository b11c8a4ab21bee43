/**
 * A Redfish client (DMTF DSP0266): a session with one BMC over HTTPS and
 * JSON. Logs in through SessionService (POST Sessions → X-Auth-Token and the
 * session's URI), logs in again once if the BMC forgets the session, and
 * deletes the session on close. Reads systems, managers and chassis into the
 * plain values of ./resources.ts, and acts: ComputerSystem.Reset, a one-time
 * boot override, virtual media, the identify LED. Failures are REDFISH_ codes;
 * the password and the token are never put in an error or a log.
 *
 *   const bmc = await RedfishClient.connect({ url, username, password, tls: { thumbprint } });
 *   const [system] = await bmc.systems();
 *   await bmc.reset(system.uri, 'ForceOff');
 *   await bmc.close();
 */
import { ZenithError } from '../../core/errors.js';
import {
  confirmPowerOff,
  type FenceOptions,
  type FenceResult,
} from '../fencing/confirm-power-off.js';
import {
  HttpsTransport,
  type HttpMethod,
  type RedfishReply,
  type RedfishTransport,
  type TlsOptions,
} from './https-transport.js';
import {
  asObject,
  collectionMembers,
  linkOf,
  readDrive,
  readManager,
  readMemory,
  readNic,
  readProcessor,
  readSensor,
  readSystem,
  readThermalAndPower,
  readVirtualMedia,
  type BootTarget,
  type DiskInfo,
  type ManagerSummary,
  type MemoryModule,
  type NicInfo,
  type PowerState,
  type ProcessorInfo,
  type ResetType,
  type SensorReading,
  type SystemSummary,
  type VirtualMediaInfo,
} from './resources.js';

export interface RedfishClientOptions {
  url: string;
  username: string;
  password: string;
  tls?: TlsOptions;
  /** Per request; default 30 s. */
  timeoutMs?: number;
  /** A transport to use instead of HTTPS to `url` (tests). */
  transport?: RedfishTransport;
}

export interface SystemInventory extends SystemSummary {
  processors: ProcessorInfo[];
  memoryModules: MemoryModule[];
  nics: NicInfo[];
  disks: DiskInfo[];
}

const root = '/redfish/v1/';

export class RedfishClient {
  readonly #transport: RedfishTransport;
  readonly #username: string;
  readonly #password: string;
  #token: string | undefined;
  #sessionUri: string | undefined;
  #serviceRoot: Record<string, unknown> = {};

  private constructor(options: RedfishClientOptions, transport: RedfishTransport) {
    this.#transport = transport;
    this.#username = options.username;
    this.#password = options.password;
  }

  static async connect(options: RedfishClientOptions): Promise<RedfishClient> {
    const transport =
      options.transport ??
      new HttpsTransport({
        url: options.url,
        ...(options.tls ? { tls: options.tls } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      });
    const client = new RedfishClient(options, transport);
    try {
      await client.#login();
    } catch (error) {
      transport.close();
      throw error;
    }
    return client;
  }

  /** The service root as the BMC sent it (RedfishVersion, UUID, Vendor …). */
  get serviceRoot(): Readonly<Record<string, unknown>> {
    return this.#serviceRoot;
  }

  async #login(): Promise<void> {
    const reply = await this.#transport.request('GET', root);
    this.#serviceRoot = asObject(expectOk(reply, 'GET', root), root);
    const sessions =
      linkOf(asObject(this.#serviceRoot.Links ?? {}, root), 'Sessions') ??
      '/redfish/v1/SessionService/Sessions';
    const created = await this.#transport.request('POST', sessions, {
      body: { UserName: this.#username, Password: this.#password },
    });
    if (created.status === 401 || created.status === 403)
      throw new ZenithError(
        'REDFISH_AUTH_FAILED',
        `the BMC refused the login of ${this.#username}`,
        {
          status: created.status,
          user: this.#username,
        },
      );
    expectOk(created, 'POST', sessions);
    const token = header(created, 'x-auth-token');
    if (!token)
      throw new ZenithError('REDFISH_PROTOCOL_ERROR', 'the BMC created a session without a token', {
        path: sessions,
      });
    this.#token = token;
    const location = header(created, 'location');
    const id =
      typeof created.body === 'object' && created.body !== null
        ? (created.body as Record<string, unknown>)['@odata.id']
        : undefined;
    this.#sessionUri = location
      ? new URL(location, 'https://bmc').pathname
      : typeof id === 'string'
        ? id
        : undefined;
  }

  /** One request with the session's token; a 401 (the BMC dropped the session) logs in once more. */
  async #call(method: HttpMethod, path: string, body?: unknown): Promise<RedfishReply> {
    if (!this.#token) throw new ZenithError('REDFISH_CLOSED', 'the Redfish session is closed');
    const send = () =>
      this.#transport.request(method, path, {
        ...(body !== undefined ? { body } : {}),
        headers: { 'x-auth-token': this.#token ?? '' },
      });
    let reply = await send();
    if (reply.status === 401) {
      await this.#login();
      reply = await send();
      if (reply.status === 401)
        throw new ZenithError('REDFISH_AUTH_FAILED', 'the BMC refused the new session', {
          path,
        });
    }
    return reply;
  }

  async get(path: string): Promise<Record<string, unknown>> {
    return asObject(expectOk(await this.#call('GET', path), 'GET', path), path);
  }

  async #members(path: string): Promise<string[]> {
    return collectionMembers(await this.get(path), path);
  }

  async #collectionOf(path: string | undefined): Promise<Record<string, unknown>[]> {
    if (!path) return [];
    const uris = await this.#members(path);
    return Promise.all(uris.map((uri) => this.get(uri)));
  }

  async systems(): Promise<SystemSummary[]> {
    const uris = await this.#members(linkOf(this.#serviceRoot, 'Systems') ?? `${root}Systems`);
    return Promise.all(uris.map(async (uri) => readSystem(await this.get(uri), uri)));
  }

  async system(uri: string): Promise<SystemSummary> {
    return readSystem(await this.get(uri), uri);
  }

  /** A system with its processors, memory modules, NICs and disks. */
  async inventory(uri: string): Promise<SystemInventory> {
    const doc = await this.get(uri);
    const summary = readSystem(doc, uri);
    const withUri = (docs: Record<string, unknown>[]) =>
      docs.map((d) => ({ doc: d, uri: idOf(d, uri) }));
    const [processors, memory, nics, storages] = await Promise.all([
      this.#collectionOf(linkOf(doc, 'Processors')),
      this.#collectionOf(linkOf(doc, 'Memory')),
      this.#collectionOf(linkOf(doc, 'EthernetInterfaces')),
      this.#collectionOf(linkOf(doc, 'Storage')),
    ]);
    const driveUris = storages.flatMap((storage) => {
      const drives = storage.Drives;
      return Array.isArray(drives)
        ? drives
            .map((d) => (d as Record<string, unknown> | null)?.['@odata.id'])
            .filter((d): d is string => typeof d === 'string')
        : [];
    });
    const drives = await Promise.all(driveUris.map(async (d) => readDrive(await this.get(d), d)));
    return {
      ...summary,
      processors: withUri(processors).map((p) => readProcessor(p.doc, p.uri)),
      memoryModules: withUri(memory).map((m) => readMemory(m.doc, m.uri)),
      nics: withUri(nics).map((n) => readNic(n.doc, n.uri)),
      disks: drives,
    };
  }

  async powerState(systemUri: string): Promise<PowerState | undefined> {
    return (await this.system(systemUri)).powerState;
  }

  async managers(): Promise<ManagerSummary[]> {
    const uris = await this.#members(linkOf(this.#serviceRoot, 'Managers') ?? `${root}Managers`);
    return Promise.all(uris.map(async (uri) => readManager(await this.get(uri), uri)));
  }

  async virtualMedia(manager: ManagerSummary): Promise<VirtualMediaInfo[]> {
    if (!manager.virtualMediaUri) return [];
    const uris = await this.#members(manager.virtualMediaUri);
    return Promise.all(uris.map(async (uri) => readVirtualMedia(await this.get(uri), uri)));
  }

  /**
   * Temperatures, fans and power draw of the given chassis (default: every chassis): the Sensors
   * collection, else Thermal and Power.
   */
  async sensors(chassisUris?: string[]): Promise<SensorReading[]> {
    const chassis =
      chassisUris ??
      (await this.#members(linkOf(this.#serviceRoot, 'Chassis') ?? `${root}Chassis`));
    const readings = await Promise.all(
      chassis.map(async (uri) => {
        const doc = await this.get(uri);
        const sensors = linkOf(doc, 'Sensors');
        if (sensors)
          return (await this.#collectionOf(sensors))
            .map((s) => readSensor(s, idOf(s, sensors)))
            .filter((s): s is SensorReading => s !== undefined);
        const thermal = linkOf(doc, 'Thermal');
        const power = linkOf(doc, 'Power');
        return readThermalAndPower(
          thermal ? await this.get(thermal) : undefined,
          power ? await this.get(power) : undefined,
        );
      }),
    );
    return readings.flat();
  }

  /** ComputerSystem.Reset; refuses a ResetType the BMC does not list as allowed. */
  async reset(systemUri: string, resetType: ResetType): Promise<void> {
    const system = await this.system(systemUri);
    const target = system.resetTarget;
    if (!target)
      throw new ZenithError(
        'REDFISH_NOT_SUPPORTED',
        `${systemUri} offers no ComputerSystem.Reset`,
        {
          path: systemUri,
        },
      );
    if (system.resetTypes.length > 0 && !system.resetTypes.includes(resetType))
      throw new ZenithError(
        'REDFISH_NOT_SUPPORTED',
        `the BMC does not allow ResetType ${resetType} (it allows ${system.resetTypes.join(', ')})`,
        { path: systemUri, resetType, allowed: system.resetTypes },
      );
    expectOk(await this.#call('POST', target, { ResetType: resetType }), 'POST', target);
  }

  /** Boots once from `target`, then as configured. */
  async bootOnce(systemUri: string, target: BootTarget): Promise<void> {
    const system = await this.system(systemUri);
    if (system.boot.allowedTargets.length > 0 && !system.boot.allowedTargets.includes(target))
      throw new ZenithError('REDFISH_NOT_SUPPORTED', `the BMC cannot boot once from ${target}`, {
        path: systemUri,
        target,
        allowed: system.boot.allowedTargets,
      });
    const body = { Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: target } };
    expectOk(await this.#call('PATCH', systemUri, body), 'PATCH', systemUri);
  }

  /** The identify light: LocationIndicatorActive where the BMC has it, IndicatorLED otherwise. */
  async identify(systemUri: string, on: boolean): Promise<void> {
    const system = await this.system(systemUri);
    const body =
      system.indicator.locationActive !== undefined
        ? { LocationIndicatorActive: on }
        : system.indicator.led !== undefined
          ? { IndicatorLED: on ? 'Lit' : 'Off' }
          : undefined;
    if (!body)
      throw new ZenithError('REDFISH_NOT_SUPPORTED', `${systemUri} has no identify light`, {
        path: systemUri,
      });
    expectOk(await this.#call('PATCH', systemUri, body), 'PATCH', systemUri);
  }

  async insertMedia(media: VirtualMediaInfo, image: string): Promise<void> {
    if (!media.insertTarget)
      throw new ZenithError('REDFISH_NOT_SUPPORTED', `${media.uri} cannot insert media`, {
        path: media.uri,
      });
    const body = { Image: image, Inserted: true, WriteProtected: true };
    expectOk(await this.#call('POST', media.insertTarget, body), 'POST', media.insertTarget);
  }

  async ejectMedia(media: VirtualMediaInfo): Promise<void> {
    if (!media.ejectTarget)
      throw new ZenithError('REDFISH_NOT_SUPPORTED', `${media.uri} cannot eject media`, {
        path: media.uri,
      });
    expectOk(await this.#call('POST', media.ejectTarget, {}), 'POST', media.ejectTarget);
  }

  /** Powers the system off (ForceOff) and returns once the BMC reads it off; see confirmPowerOff. */
  fence(systemUri: string, options: FenceOptions = {}): Promise<FenceResult> {
    return confirmPowerOff(
      {
        powerOff: () => this.reset(systemUri, 'ForceOff'),
        readPower: async () => {
          const state = await this.powerState(systemUri);
          return state === 'Off' ? 'off' : state === 'On' ? 'on' : 'unknown';
        },
      },
      options,
    );
  }

  /** Deletes the session (best effort: an unreachable BMC expires it) and closes the connections. */
  async close(): Promise<void> {
    const sessionUri = this.#sessionUri;
    const token = this.#token;
    this.#token = undefined;
    try {
      if (sessionUri && token)
        await this.#transport.request('DELETE', sessionUri, { headers: { 'x-auth-token': token } });
    } catch {
      // The session times out on the BMC; closing must not fail because the BMC went away.
    } finally {
      this.#transport.close();
    }
  }
}

function idOf(doc: Record<string, unknown>, fallback: string): string {
  const id = doc['@odata.id'];
  return typeof id === 'string' ? id : fallback;
}

function header(reply: RedfishReply, name: string): string | undefined {
  const value = reply.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The body of a 2xx reply; an HTTP error becomes a coded error carrying Redfish's message ids. */
function expectOk(reply: RedfishReply, method: HttpMethod, path: string): unknown {
  if (reply.status >= 200 && reply.status < 300) return reply.body;
  const error = (reply.body as { error?: Record<string, unknown> } | undefined)?.error;
  const extended = Array.isArray(error?.['@Message.ExtendedInfo'])
    ? (error['@Message.ExtendedInfo'] as Record<string, unknown>[])
        .map((info) => info.MessageId)
        .filter((id): id is string => typeof id === 'string')
    : [];
  const details = { path, status: reply.status, messageIds: extended };
  const message = `${method} ${path}: the BMC answered HTTP ${reply.status}${
    typeof error?.message === 'string' ? ` (${error.message})` : ''
  }`;
  if (reply.status === 401 || reply.status === 403)
    throw new ZenithError('REDFISH_AUTH_FAILED', message, details);
  if (reply.status === 404 || reply.status === 405 || reply.status === 501)
    throw new ZenithError('REDFISH_NOT_SUPPORTED', message, details);
  throw new ZenithError('REDFISH_REQUEST_FAILED', message, details);
}
