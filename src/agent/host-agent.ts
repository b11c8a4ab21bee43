/**
 * `zenith agent`: runs on a hypervisor host. Enrolls once with a one-time
 * token (a key pair made here and a client certificate from Zenith's CA,
 * mode 0600), then keeps one self-re-establishing WebSocket to the control
 * plane, opened by signing the control plane's challenge with that key: it
 * answers driver calls with its local QEMU driver, pushes inventory changes,
 * sends a heartbeat with the host's facts and renews its certificate before
 * it expires. The VMs are QEMU processes that outlive the agent: a restarted
 * agent re-attaches to them.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { Clock } from '../core/clock.js';
import { isErrorCode, isZenithError, ZenithError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { QemuDriver } from '../hypervisors/qemu/qemu-driver.js';
import { check, decodeForAgent, encodeForControlPlane } from '../protocols/agent-channel/codec.js';
import {
  dispatchCall,
  dispatchMessage,
  type CallContext,
  type MessageHandlers,
} from '../protocols/agent-channel/dispatcher.js';
import type {
  AgentReceives,
  ControlPlaneHandshake,
  ControlPlaneReceives,
  FromAgent,
} from '../protocols/agent-channel/messages.js';
import {
  channelProtocol,
  formatVersion,
  parseVersion,
  type ProtocolVersion,
} from '../protocols/agent-channel/version.js';
import {
  InventoryDelta,
  type InventoryDelta as WireDelta,
} from '../protocols/agent-channel/values.js';
import { qemuCallHandlers } from './call-handlers.js';
import { ConsoleRelays } from './console-relays.js';
import { DiskStreamHandles } from './disk-stream-handles.js';
import { haCallHandlers } from './ha-call-handlers.js';
import { StorageScanHandles } from './storage-scan-handles.js';
import { startHaWatchdog, watchChannel } from './ha-host.js';
import type { HaWatchdog } from './ha-watchdog.js';
import {
  CredentialStore,
  enroll,
  newKeyAndRequest,
  signChallenge,
  type AgentCredentials,
} from './agent-credentials.js';

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
  /**
   * The command that runs `zenith agent-sentinel` on this host, the fencing sentinel that kills
   * the VMs should the agent die (ha-sentinel.ts). None: no sentinel (an agent inside a test).
   */
  sentinelCommand?: string[] | undefined;
  /**
   * The channel protocol version to speak (default: this build's, or ZENITH_AGENT_PROTOCOL):
   * an older minor answers the methods it lacks as an agent of that version would, for testing
   * compatibility with a real agent process.
   */
  protocolVersion?: ProtocolVersion;
  clock: Clock;
  logger: Logger;
}

/** Refusals that another attempt cannot change: the agent stops and says why. */
const finalRefusals = new Set([
  'ZEN_CREDENTIAL_REVOKED',
  'ZEN_CERTIFICATE_EXPIRED',
  'ZEN_CERTIFICATE_INVALID',
  'ZEN_AGENT_INCOMPATIBLE',
]);

/** The version ZENITH_AGENT_PROTOCOL asks for (MAJOR.MINOR), or this build's. */
function protocolFromEnvironment(): ProtocolVersion {
  const asked = process.env.ZENITH_AGENT_PROTOCOL;
  if (asked === undefined) return channelProtocol;
  const version = parseVersion(asked);
  if (!version)
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      `ZENITH_AGENT_PROTOCOL is MAJOR.MINOR (this build speaks ${formatVersion(channelProtocol)})`,
    );
  return version;
}

export class HostAgent {
  readonly #options: HostAgentOptions;
  readonly #protocol: ProtocolVersion;
  #driver: QemuDriver | undefined;
  #ha: HaWatchdog | undefined;
  #socket: WebSocket | undefined;
  #stopped = false;
  readonly #abort = new AbortController();
  readonly #store: CredentialStore;
  #current: AgentCredentials | undefined;

  constructor(options: HostAgentOptions) {
    this.#options = options;
    this.#protocol = options.protocolVersion ?? protocolFromEnvironment();
    this.#store = new CredentialStore(options.stateDir);
  }

  /** Enrolls if needed, starts the driver, and keeps the channel up until stop(). */
  async run(): Promise<void> {
    this.#current = await this.#credentials();
    this.#options.logger.info({ protocol: formatVersion(this.#protocol) }, 'starting');
    const driver = new QemuDriver({
      stateDir: join(this.#options.stateDir, 'qemu'),
      storageRoots: this.#options.storageRoots,
      accelerator: this.#options.accelerator,
      ...(this.#options.hostName ? { hostName: this.#options.hostName } : {}),
      ...(this.#options.migrationAddress
        ? { migrationAddress: this.#options.migrationAddress }
        : {}),
      clock: this.#options.clock,
      logger: this.#options.logger,
    });
    await driver.connect();
    this.#driver = driver;
    this.#ha = await startHaWatchdog({ driver, ...this.#options });
    let backoffMs = 500;
    while (!this.#stopped) {
      const opened = await this.#session(this.#current, driver).catch(async (error: unknown) => {
        if (isZenithError(error) && finalRefusals.has(error.code)) {
          this.#options.logger.error({ code: error.code, err: error.message }, 'refused');
          await this.stop();
          throw error;
        }
        this.#options.logger.warn({ err: (error as Error).message }, 'control plane unreachable');
        return false;
      });
      if (this.#stopped) break;
      // At most 5 s between tries: a control plane back from a restart hears from its agents at
      // once (what was cut off, a migration's switch-over, waits on them); up to a fifth less, so
      // that a fleet's agents do not all call in the same instant.
      backoffMs = opened ? 500 : Math.min(backoffMs * 2, 5_000);
      const jittered = Math.round(backoffMs * (0.8 + 0.2 * Math.random()));
      await this.#options.clock.sleep(jittered, this.#abort.signal).catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.#socket?.close(1000, 'agent stopping');
    await this.#ha?.stop();
    await this.#driver?.close();
  }

  async #credentials(): Promise<AgentCredentials> {
    const stored = this.#store.load();
    if (stored) return stored;
    if (!this.#options.enrollmentToken)
      throw new ZenithError(
        'ZEN_UNAUTHENTICATED',
        'this agent is not enrolled yet: pass --token with a one-time enrollment token',
      );
    const credentials = await enroll({
      server: this.#options.server,
      enrollmentToken: this.#options.enrollmentToken,
      hostName: this.#options.hostName ?? hostname(),
    });
    this.#store.save(credentials);
    this.#options.logger.info({ agentId: credentials.agentId }, 'enrolled');
    return credentials;
  }

  /** Asks for a certificate for a new key pair; the answer arrives as `renewed` on the channel. */
  #renew(send: (message: FromAgent) => void, pending: { privateKey?: string }): void {
    void newKeyAndRequest(this.#options.hostName ?? hostname()).then(
      ({ privateKey, csr }) => {
        pending.privateKey = privateKey;
        send({ type: 'renew', csr });
        this.#options.logger.info('renewing the certificate');
      },
      (error: unknown) =>
        this.#options.logger.warn({ err: (error as Error).message }, 'no key for the renewal'),
    );
  }

  /** One channel's life; resolves true if it was ever open. */
  #session(credentials: AgentCredentials, driver: QemuDriver): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const url = `${this.#options.server.replace(/^http/, 'ws')}/api/v1/agents/channel`;
      const socket = new WebSocket(url);
      this.#socket = socket;
      let opened = false;
      let refusal: ZenithError | undefined;
      let renewal: NodeJS.Timeout | undefined;
      const pendingKey: { privateKey?: string } = {};
      const watching = new AbortController();
      // What this end would send wrong (a value the channel does not allow) is logged, not sent.
      const send = (message: ControlPlaneReceives) => {
        if (socket.readyState !== WebSocket.OPEN) return;
        try {
          socket.send(encodeForControlPlane(message));
        } catch (error) {
          this.#options.logger.error({ err: error, type: message.type }, 'a message was not sent');
        }
      };
      // Started by run() before any session.
      const ha = this.#ha!;
      // What this channel opens of the host's disks, closed when it drops.
      const diskStreams = new DiskStreamHandles(driver.facets.diskStreams, this.#options.logger);
      // Scans this channel ran, kept until read (or it drops).
      const storageScans = new StorageScanHandles(driver.facets.storageScan, this.#options.clock);
      const callHandlers = {
        ...qemuCallHandlers(driver),
        ...diskStreams.handlers(),
        ...storageScans.handlers(),
        ...haCallHandlers(ha, driver, this.#options.storageRoots, this.#options.logger),
      };
      let unwatch: (() => void) | undefined;
      let heartbeat: NodeJS.Timeout | undefined;
      const consoles = new ConsoleRelays(driver);
      // Calls under way, so the control plane can cancel one (a cancelled task).
      const calls = new Map<number, AbortController>();
      const welcome = (message: Extract<ControlPlaneHandshake, { type: 'welcome' }>) => {
        opened = true;
        unwatch = watchChannel(ha, socket, this.#options.clock);
        this.#options.logger.info(
          {
            serial: message.serial,
            renewInMs: message.renewInMs,
            // A control plane from before versions says nothing: it speaks 1.0.
            protocol: message.protocol ?? '1.0',
          },
          'channel open',
        );
        renewal = setTimeout(() => this.#renew(send, pendingKey), message.renewInMs);
        const beat = () =>
          void Promise.all([this.#hostFacts(driver), driver.allMetrics()]).then(
            ([facts, metrics]) => send({ type: 'heartbeat', facts, metrics }),
            (error: unknown) =>
              this.#options.logger.warn({ err: (error as Error).message }, 'heartbeat failed'),
          );
        beat();
        heartbeat = setInterval(beat, this.#options.heartbeatMs ?? 5000);
        (async () => {
          for await (const delta of driver.watch(watching.signal)) {
            // Checked as the channel defines a delta; a driver bug is logged, not sent.
            try {
              send({ type: 'delta', delta: check<WireDelta>(InventoryDelta, delta, 'a delta') });
            } catch (error) {
              this.#options.logger.error({ err: error }, 'a delta was not sent');
            }
          }
        })().catch((error: unknown) =>
          this.#options.logger.error({ err: error }, 'the inventory watch failed'),
        );
      };
      const handlers: MessageHandlers<AgentReceives> = {
        challenge: (message) =>
          send({
            type: 'hello',
            certificate: credentials.certificate,
            signature: signChallenge(credentials, message.nonce),
            protocol: formatVersion(this.#protocol),
          }),
        welcome,
        refused: (message) => {
          refusal = new ZenithError(
            isErrorCode(message.error.code) ? message.error.code : 'ZEN_UNAUTHENTICATED',
            `the control plane refused the channel: ${message.error.message}`,
          );
        },
        renewed: (message) => {
          if (!pendingKey.privateKey) return;
          // Keep the new certificate first; only then may the control plane revoke the old one.
          this.#current = {
            ...(this.#current ?? credentials),
            certificate: message.certificate,
            privateKey: pendingKey.privateKey,
          };
          delete pendingKey.privateKey;
          this.#store.save(this.#current);
          send({ type: 'switched' });
          this.#options.logger.info({ notAfter: message.notAfter }, 'certificate renewed');
          renewal = setTimeout(() => this.#renew(send, pendingKey), message.renewInMs);
        },
        'renew-failed': (message) => {
          this.#options.logger.warn({ code: message.error.code }, message.error.message);
          renewal = setTimeout(() => this.#renew(send, pendingKey), 60_000);
        },
        call: (call) => {
          const controller = new AbortController();
          calls.set(call.id, controller);
          const context: CallContext = {
            signal: AbortSignal.any([this.#abort.signal, controller.signal]),
            progress: (update) => send({ type: 'progress', id: call.id, update }),
          };
          dispatchCall(call, callHandlers, this.#protocol, context)
            .then((result) => {
              calls.delete(call.id);
              send(result);
            })
            .catch((error: unknown) =>
              this.#options.logger.error({ err: error, call: call.id }, 'a call was not answered'),
            );
        },
        cancel: (message) => calls.get(message.id)?.abort(),
        'console-open': (message) => consoles.open(message, send),
        'console-data': (message) => consoles.write(message),
        'console-close': (message) => consoles.close(message),
      };
      socket.on('message', (data: Buffer) => {
        let message;
        try {
          message = decodeForAgent(data);
        } catch (error) {
          this.#options.logger.warn({ err: (error as Error).message }, 'a message was refused');
          return;
        }
        // A type this agent does not know (a newer control plane's) is none of its business.
        if (message !== null) dispatchMessage(message, handlers);
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
        clearTimeout(renewal);
        if (refusal && !opened) {
          reject(refusal);
          return;
        }
        clearInterval(heartbeat);
        unwatch?.();
        consoles.closeAll();
        storageScans.close();
        diskStreams
          .closeAll()
          .catch((error: unknown) =>
            this.#options.logger.error({ err: error }, 'closing the disk streams failed'),
          );
        watching.abort();
        resolve(opened);
      });
    });
  }

  async #hostFacts(driver: QemuDriver): Promise<Record<string, unknown>> {
    const snapshot = await driver.discover();
    const host = snapshot.objects.find((o) => o.kind === 'host');
    return { ...(host?.facts ?? {}), 'agent.vms': snapshot.objects.length - 1 };
  }
}
