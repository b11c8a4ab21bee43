/**
 * The live channels of connected agents. Each channel is an AgentLink the
 * agent's connection uses as its driver; when the agent reconnects, the
 * connection is told at once instead of waiting out its backoff.
 */
import { isErrorCode, isZenithError, ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import {
  type AgentLink,
  type AgentMethod,
  type FromAgent,
  type ToAgent,
} from '../../hypervisors/agent/agent-link.js';
import { DeltaFeed } from '../../hypervisors/delta-feed.js';
import { Duplex } from 'node:stream';
import type {
  ActionContext,
  ConsoleKind,
  InventoryDelta,
  VmMetrics,
} from '../../hypervisors/driver.js';

/** The part of a WebSocket the hub needs (ws's WebSocket satisfies it). */
export interface ChannelSocket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  on(event: 'message', listener: (data: Buffer) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  context: ActionContext | undefined;
  /** Stops listening to the context's signal. */
  release(): void;
}

/** Certificate renewal over the channel: a CSR in, a certificate out; then the switch is confirmed. */
export interface RenewalHandlers {
  renew(csr: string): Promise<{ certificate: string; notAfter: number; renewInMs: number }>;
  /** Reports its own failure: a rejection is dropped. */
  switched(): Promise<void>;
}

class AgentChannel implements AgentLink {
  #connected = true;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #feed = new DeltaFeed();
  #metrics = new Map<string, VmMetrics>();
  #nextStream = 1;
  readonly #consoles = new Map<
    number,
    { relay: Duplex; opened: () => void; failed: (error: Error) => void }
  >();

  constructor(
    private readonly socket: ChannelSocket,
    private readonly onHeartbeat: (facts: Record<string, unknown>) => void,
    private readonly renewal: RenewalHandlers,
  ) {
    socket.on('message', (data) => this.#receive(data));
    socket.on('close', () => this.drop());
  }

  get connected(): boolean {
    return this.#connected;
  }

  call(
    method: AgentMethod,
    args: unknown[],
    options: { timeoutMs?: number; context?: ActionContext } = {},
  ): Promise<unknown> {
    if (!this.#connected)
      return Promise.reject(
        new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the host agent is not connected'),
      );
    const timeoutMs = options.timeoutMs ?? 30_000;
    const context = options.context;
    const id = this.#nextId++;
    const message: ToAgent = { type: 'call', id, method, args };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.get(id)?.release();
        this.#pending.delete(id);
        reject(
          new ZenithError(
            'ZEN_TIMEOUT',
            `the host agent did not answer ${method} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      // A cancelled task cancels the agent's work; the agent still answers (with ZEN_TASK_CANCELLED).
      const cancel = () => this.#send({ type: 'cancel', id });
      context?.signal.addEventListener('abort', cancel, { once: true });
      const release = () => context?.signal.removeEventListener('abort', cancel);
      this.#pending.set(id, { resolve, reject, timer, context, release });
      this.socket.send(JSON.stringify(message));
      if (context?.signal.aborted) cancel();
    });
  }

  metrics(vmId: string): VmMetrics | undefined {
    return this.#metrics.get(vmId);
  }

  deltas(signal: AbortSignal): AsyncIterable<InventoryDelta> {
    return this.#feed.watch(signal);
  }

  openConsole(vmId: string, kind: ConsoleKind): Promise<Duplex> {
    if (!this.#connected)
      return Promise.reject(
        new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the host agent is not connected'),
      );
    const stream = this.#nextStream++;
    const relay = new Duplex({
      read: () => undefined,
      write: (chunk: Buffer, _encoding, callback) => {
        this.#send({ type: 'console-data', stream, data: chunk.toString('base64') });
        callback();
      },
      destroy: (error, callback) => {
        if (this.#consoles.delete(stream)) this.#send({ type: 'console-close', stream });
        callback(error);
      },
    });
    return new Promise((resolve, reject) => {
      this.#consoles.set(stream, {
        relay,
        opened: () => resolve(relay),
        failed: (error) => reject(error),
      });
      this.#send({ type: 'console-open', stream, vmId, kind });
    });
  }

  #send(message: ToAgent): void {
    if (this.#connected) this.socket.send(JSON.stringify(message));
  }

  /** Closes the socket and fails everything under way. */
  close(code: number, reason: string): void {
    this.socket.close(code, reason);
    this.drop();
  }

  drop(): void {
    if (!this.#connected) return;
    this.#connected = false;
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.release();
      pending.reject(
        new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the host agent went away during the call'),
      );
      this.#pending.delete(id);
    }
    this.#feed.close();
    for (const console of this.#consoles.values()) {
      console.failed(new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the host agent went away'));
      console.relay.destroy();
    }
    this.#consoles.clear();
  }

  #receive(data: Buffer): void {
    let message: FromAgent;
    try {
      message = JSON.parse(data.toString('utf8')) as FromAgent;
    } catch {
      this.socket.close(4400, 'not JSON');
      return;
    }
    if (message.type === 'heartbeat') {
      this.onHeartbeat(message.facts ?? {});
      if (message.metrics && typeof message.metrics === 'object')
        this.#metrics = new Map(Object.entries(message.metrics));
    } else if (message.type === 'progress') {
      const context = this.#pending.get(message.id)?.context;
      if (context && message.update && typeof message.update.percent === 'number')
        context.progress(message.update);
    } else if (message.type === 'renew') {
      this.renewal.renew(String(message.csr)).then(
        (issued) => this.#send({ type: 'renewed', ...issued }),
        (error: unknown) =>
          this.#send({
            type: 'renew-failed',
            error: {
              code: isZenithError(error) ? error.code : 'ZEN_INTERNAL',
              message: isZenithError(error) ? error.message : 'the renewal failed',
            },
          }),
      );
    } else if (message.type === 'switched')
      // switched() reports its own failure (the channel's route logs it).
      this.renewal.switched().catch(() => undefined);
    else if (message.type === 'delta') this.#feed.push(message.delta);
    else if (message.type === 'console-opened') this.#consoles.get(message.stream)?.opened();
    else if (message.type === 'console-data')
      this.#consoles.get(message.stream)?.relay.push(Buffer.from(message.data, 'base64'));
    else if (message.type === 'console-close') {
      const console = this.#consoles.get(message.stream);
      this.#consoles.delete(message.stream);
      if (console && message.error)
        console.failed(
          new ZenithError(
            isErrorCode(message.error.code) ? message.error.code : 'ZEN_DRIVER_ERROR',
            message.error.message,
          ),
        );
      console?.relay.push(null);
      console?.relay.destroy();
    } else if (message.type === 'result') {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      clearTimeout(pending.timer);
      pending.release();
      if (message.ok) pending.resolve(message.value);
      else {
        const code =
          isErrorCode(message.error.code) && message.error.code !== 'ZEN_INTERNAL'
            ? message.error.code
            : 'ZEN_DRIVER_ERROR';
        pending.reject(new ZenithError(code, message.error.message, message.error.details ?? {}));
      }
    }
  }
}

export class AgentHub {
  readonly #channels = new Map<string, AgentChannel>();
  readonly #connectedFollowers = new Set<(agentId: string) => void>();

  constructor(private readonly logger: Logger) {}

  /**
   * Calls `listener` when an agent's channel opens (the control plane nudges its connection, which
   * itself reaches the agent through this hub). Answers the unsubscribe.
   */
  followConnected(listener: (agentId: string) => void): () => void {
    this.#connectedFollowers.add(listener);
    return () => this.#connectedFollowers.delete(listener);
  }

  attach(
    agentId: string,
    socket: ChannelSocket,
    handlers: { heartbeat: (facts: Record<string, unknown>) => void } & RenewalHandlers,
  ): void {
    this.#channels.get(agentId)?.drop();
    const channel = new AgentChannel(socket, handlers.heartbeat, handlers);
    this.#channels.set(agentId, channel);
    socket.on('close', () => {
      if (this.#channels.get(agentId) === channel) this.#channels.delete(agentId);
      this.logger.info({ agentId }, 'agent channel closed');
    });
    this.logger.info({ agentId }, 'agent channel open');
    for (const listener of this.#connectedFollowers) listener(agentId);
  }

  link(agentId: string): AgentLink | undefined {
    return this.#channels.get(agentId);
  }

  /** Closes an agent's channel now (a revoked agent): its calls fail, its connection drops. */
  disconnect(agentId: string, reason: string): void {
    const channel = this.#channels.get(agentId);
    if (!channel) return;
    this.#channels.delete(agentId);
    channel.close(4403, reason);
  }

  closeAll(): void {
    for (const channel of this.#channels.values()) channel.drop();
    this.#channels.clear();
  }
}
