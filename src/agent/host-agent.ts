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
import {
  isAgentMethod,
  type ChannelHandshake,
  type FromAgent,
  type ToAgent,
} from '../hypervisors/agent/agent-link.js';
import type { ActionContext, CloneOptions, MigrateOptions, VmSpec } from '../hypervisors/driver.js';
import { QemuDriver } from '../hypervisors/qemu/qemu-driver.js';
import type { IncomingEndpoint, MigrationPackage } from '../hypervisors/qemu/qemu-migration.js';
import { ConsoleRelays } from './console-relays.js';
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
  clock: Clock;
  logger: Logger;
}

/** Refusals that another attempt cannot change: the agent stops and says why. */
const finalRefusals = new Set([
  'ZEN_CREDENTIAL_REVOKED',
  'ZEN_CERTIFICATE_EXPIRED',
  'ZEN_CERTIFICATE_INVALID',
]);

export class HostAgent {
  readonly #options: HostAgentOptions;
  #driver: QemuDriver | undefined;
  #socket: WebSocket | undefined;
  #stopped = false;
  readonly #abort = new AbortController();
  readonly #store: CredentialStore;
  #current: AgentCredentials | undefined;

  constructor(options: HostAgentOptions) {
    this.#options = options;
    this.#store = new CredentialStore(options.stateDir);
  }

  /** Enrolls if needed, starts the driver, and keeps the channel up until stop(). */
  async run(): Promise<void> {
    this.#current = await this.#credentials();
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
      const send = (message: FromAgent) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
      };
      let heartbeat: NodeJS.Timeout | undefined;
      const consoles = new ConsoleRelays(driver);
      // Calls under way, so the control plane can cancel one (a cancelled task).
      const calls = new Map<number, AbortController>();
      const welcome = (message: Extract<ChannelHandshake, { type: 'welcome' }>) => {
        opened = true;
        this.#options.logger.info(
          { serial: message.serial, renewInMs: message.renewInMs },
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
          for await (const delta of driver.watch(watching.signal)) send({ type: 'delta', delta });
        })().catch((error: unknown) =>
          this.#options.logger.error({ err: error }, 'the inventory watch failed'),
        );
      };
      socket.on('message', (data: Buffer) => {
        let message: ToAgent | ChannelHandshake;
        try {
          message = JSON.parse(data.toString('utf8')) as ToAgent | ChannelHandshake;
        } catch {
          return;
        }
        if (message.type === 'challenge')
          socket.send(
            JSON.stringify({
              type: 'hello',
              certificate: credentials.certificate,
              signature: signChallenge(credentials, message.nonce),
            } satisfies ChannelHandshake),
          );
        else if (message.type === 'welcome') welcome(message);
        else if (message.type === 'refused')
          refusal = new ZenithError(
            isErrorCode(message.error.code) ? message.error.code : 'ZEN_UNAUTHENTICATED',
            `the control plane refused the channel: ${message.error.message}`,
          );
        else if (message.type === 'renewed') {
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
        } else if (message.type === 'renew-failed') {
          this.#options.logger.warn({ code: message.error.code }, message.error.message);
          renewal = setTimeout(() => this.#renew(send, pendingKey), 60_000);
        } else if (message.type === 'call') {
          const controller = new AbortController();
          calls.set(message.id, controller);
          const context: ActionContext = {
            signal: AbortSignal.any([this.#abort.signal, controller.signal]),
            progress: (update) => send({ type: 'progress', id: message.id, update }),
          };
          this.#answer(driver, message, context)
            .then((result) => {
              calls.delete(message.id);
              send(result);
            })
            .catch((error: unknown) =>
              this.#options.logger.error(
                { err: error, call: message.id },
                'a call was not answered',
              ),
            );
        } else if (message.type === 'cancel') calls.get(message.id)?.abort();
        else if (
          message.type === 'console-open' ||
          message.type === 'console-data' ||
          message.type === 'console-close'
        )
          consoles.handle(message, send);
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
        case 'checkNewVm':
          value = await driver.checkNewVm(first as VmSpec);
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
          value = (await driver.facets.migration.exportVm(id)).payload;
          break;
        case 'prepareIncoming': {
          const pkg = first as MigrationPackage;
          value = (
            await driver.facets.migration.prepareIncoming(
              { migrationId: pkg.record.id, protocol: 'qemu', payload: pkg },
              second ?? {},
            )
          ).payload;
          break;
        }
        case 'incomingState':
          value = await driver.facets.migration.incomingState(id);
          break;
        case 'outgoingState':
          value = await driver.facets.migration.outgoingState(id);
          break;
        case 'sendMigration': {
          const [, incoming, options] = call.args as [
            string,
            IncomingEndpoint,
            MigrateOptions & { multifdChannels?: number },
          ];
          const { resumesAtFinish: _, ...result } = await driver.facets.migration.send(
            id,
            { protocol: 'qemu', payload: incoming },
            options ?? {},
            context,
          );
          value = result;
          break;
        }
        case 'finishIncoming':
          value = await driver.facets.migration.finishIncoming(id);
          break;
        case 'cleanupOutgoing':
          await driver.facets.migration.finishOutgoing(id, true);
          value = null;
          break;
        case 'abortIncoming':
          await driver.facets.migration.abortIncoming(id);
          value = null;
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
