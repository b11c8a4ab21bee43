/**
 * The live channels of connected agents. Each channel is an AgentLink the
 * agent's connection uses as its driver; when the agent reconnects, the
 * connection is told at once instead of waiting out its backoff.
 */
import { Duplex } from 'node:stream';
import { isErrorCode, isZenithError, ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { DeltaFeed } from '../../hypervisors/delta-feed.js';
import type { AgentLink } from '../../protocols/agent-channel/agent-link.js';
import {
  agentCalls,
  type AgentMethod,
  type CallArgs,
  type CallResult,
} from '../../protocols/agent-channel/call-map.js';
import {
  decodeForControlPlane,
  decodeResult,
  encodeForAgent,
} from '../../protocols/agent-channel/codec.js';
import {
  dispatchMessage,
  type CallContext,
  type MessageHandlers,
} from '../../protocols/agent-channel/dispatcher.js';
import type { ControlPlaneReceives, ToAgent } from '../../protocols/agent-channel/messages.js';
import type {
  ConsoleKind,
  InventoryDelta,
  VmMetrics,
} from '../../protocols/agent-channel/values.js';
import {
  formatVersion,
  speaks,
  type ProtocolVersion,
} from '../../protocols/agent-channel/version.js';

/** The part of a WebSocket the hub needs (ws's WebSocket satisfies it). */
export interface ChannelSocket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** Destroys the connection at once, without a closing handshake a silent peer never answers. */
  terminate?(): void;
  on(event: 'message', listener: (data: Buffer) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  /** A WebSocket ping (the peer's pong proves it alive without a message of ours). */
  ping?(): void;
  on(event: 'pong', listener: () => void): unknown;
}

interface Pending {
  method: AgentMethod;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  context: CallContext | undefined;
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
  readonly #feed = new DeltaFeed<InventoryDelta>();
  #metrics = new Map<string, VmMetrics>();
  #nextStream = 1;
  readonly #consoles = new Map<
    number,
    { relay: Duplex; opened: () => void; failed: (error: Error) => void }
  >();

  constructor(
    private readonly socket: ChannelSocket,
    readonly protocol: ProtocolVersion,
    private readonly onHeartbeat: (facts: Record<string, unknown>) => void,
    private readonly renewal: RenewalHandlers,
    private readonly logger: Logger,
  ) {
    socket.on('message', (data) => {
      this.lastHeardAt = Date.now();
      this.#receive(data);
    });
    socket.on('pong', () => (this.lastHeardAt = Date.now()));
    socket.on('close', () => this.drop());
  }

  /** When the agent last said anything (a message or a pong), ms since the epoch. */
  lastHeardAt = Date.now();

  /** Asks the agent for a pong (liveness between its heartbeats). */
  probe(): void {
    try {
      this.socket.ping?.();
    } catch {
      // A socket closing: its close event follows.
    }
  }

  get connected(): boolean {
    return this.#connected;
  }

  supports(method: AgentMethod): boolean {
    return speaks(this.protocol, agentCalls[method].since);
  }

  call<M extends AgentMethod>(
    method: M,
    args: CallArgs<M>,
    options: { timeoutMs?: number; context?: CallContext } = {},
  ): Promise<CallResult<M>> {
    if (!this.#connected)
      return Promise.reject(
        new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the host agent is not connected'),
      );
    // An older agent does not know the method: refused here, as it would refuse it.
    if (!this.supports(method))
      return Promise.reject(
        new ZenithError(
          'ZEN_UNSUPPORTED',
          `the host agent speaks the agent channel protocol ${formatVersion(this.protocol)}, which has no '${method}' (since ${formatVersion(agentCalls[method].since)}): upgrade the agent`,
          { method, agentProtocol: formatVersion(this.protocol) },
        ),
      );
    const timeoutMs = options.timeoutMs ?? 30_000;
    const context = options.context;
    const id = this.#nextId++;
    return new Promise<CallResult<M>>((resolve, reject) => {
      // Encoded first: a call the channel does not allow rejects (the executor throws) before
      // anything waits for its answer.
      const frame = encodeForAgent({ type: 'call', id, method, args });
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
      this.#pending.set(id, {
        method,
        resolve: (value) => resolve(value as CallResult<M>),
        reject,
        timer,
        context,
        release,
      });
      this.socket.send(frame);
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

  /** What this end would send wrong (a value the channel does not allow) is logged, not sent. */
  #send(message: ToAgent): void {
    if (!this.#connected) return;
    try {
      this.socket.send(encodeForAgent(message));
    } catch (error) {
      this.logger.error({ err: error, type: message.type }, 'agent channel message not sent');
    }
  }

  /** Closes the socket and fails everything under way. */
  close(code: number, reason: string): void {
    this.socket.close(code, reason);
    this.drop();
  }

  /** Cuts a peer that has gone silent off: no closing handshake, everything under way fails. */
  cutOff(): void {
    try {
      if (this.socket.terminate) this.socket.terminate();
      else this.socket.close(4408, 'silent');
    } catch {
      // Already closing.
    }
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
    let message;
    try {
      message = decodeForControlPlane(data);
    } catch (error) {
      // A peer that breaks the protocol is cut off: it reconnects and is believed no more than before.
      const coded = error as ZenithError;
      this.logger.warn({ code: coded.code, err: coded.message }, 'agent channel message refused');
      this.socket.close(4400, `${coded.code}: ${coded.message}`.slice(0, 120));
      this.drop();
      return;
    }
    // A type this control plane does not know (a newer agent's) is none of its business.
    if (message !== null) dispatchMessage(message, this.#handlers);
  }

  /** What the control plane does with each message an agent sends (the codec has checked it). */
  readonly #handlers: MessageHandlers<ControlPlaneReceives> = {
    heartbeat: (message) => {
      this.onHeartbeat(message.facts);
      if (message.metrics) this.#metrics = new Map(Object.entries(message.metrics));
    },
    progress: (message) => this.#pending.get(message.id)?.context?.progress(message.update),
    renew: (message) => {
      this.renewal.renew(message.csr).then(
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
    },
    switched: () => {
      // switched() reports its own failure (the channel's route logs it).
      this.renewal.switched().catch(() => undefined);
    },
    delta: (message) => this.#feed.push(message.delta),
    'console-opened': (message) => this.#consoles.get(message.stream)?.opened(),
    'console-data': (message) =>
      this.#consoles.get(message.stream)?.relay.push(Buffer.from(message.data, 'base64')),
    'console-close': (message) => {
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
    },
    result: (message) => {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      clearTimeout(pending.timer);
      pending.release();
      if (message.ok) {
        // What the agent answers is believed only in the shape the call map gives it.
        try {
          pending.resolve(decodeResult(pending.method, message.value));
        } catch (error) {
          pending.reject(error as ZenithError);
        }
      } else {
        const code =
          isErrorCode(message.error.code) && message.error.code !== 'ZEN_INTERNAL'
            ? message.error.code
            : 'ZEN_DRIVER_ERROR';
        pending.reject(new ZenithError(code, message.error.message, message.error.details ?? {}));
      }
    },
    // The handshake is over: a second hello is out of place, and harmless.
    hello: () => undefined,
  };
}

/**
 * How long an agent may say nothing (no message, no pong) before its channel is cut off: three
 * heartbeats, when the agent is shown disconnected too. A link cut without its socket closing, or a
 * frozen agent, then fails the calls waiting on it within seconds instead of at each one's own
 * timeout (a disk merge waits up to ten minutes).
 */
export const channelSilenceLimitMs = 15_000;

export interface AgentHubOptions {
  silenceLimitMs?: number;
  /** How often channels are looked at (and pinged when nothing else pings them). */
  watchEveryMs?: number;
}

export class AgentHub {
  readonly #channels = new Map<string, AgentChannel>();
  readonly #connectedFollowers = new Set<(agentId: string) => void>();
  #prober: NodeJS.Timeout | undefined;
  #watcher: NodeJS.Timeout | undefined;
  #lastWatch = Date.now();
  readonly #silenceLimitMs: number;
  readonly #watchEveryMs: number;

  constructor(
    private readonly logger: Logger,
    options: AgentHubOptions = {},
  ) {
    this.#silenceLimitMs = options.silenceLimitMs ?? channelSilenceLimitMs;
    this.#watchEveryMs = options.watchEveryMs ?? 1000;
  }

  /** Pings the channels nothing else pings, and cuts off those silent past the limit. */
  #watch(): void {
    const now = Date.now();
    const late = now - this.#lastWatch - this.#watchEveryMs;
    this.#lastWatch = now;
    // This process stood still (a long pause of its own): what its sockets received meanwhile is
    // not read yet, so silence measured now says nothing about the agents.
    if (late > this.#watchEveryMs + 1000) return;
    for (const [agentId, channel] of this.#channels) {
      const silent = now - channel.lastHeardAt;
      if (silent > this.#silenceLimitMs) {
        this.logger.warn(
          { agentId, silentMs: silent },
          'agent channel silent past its limit: cut off (its calls fail; the agent reconnects)',
        );
        this.#channels.delete(agentId);
        channel.cutOff();
      } else if (!this.#prober && silent > this.#silenceLimitMs / 3) channel.probe();
    }
  }

  /**
   * Pings every agent each `everyMs` (high availability: a host cut off without its socket closing
   * falls silent within seconds, not after three missed heartbeats). Idempotent; stopped by closeAll.
   */
  probeEvery(everyMs: number): void {
    if (this.#prober) return;
    this.#prober = setInterval(() => {
      for (const channel of this.#channels.values()) channel.probe();
    }, everyMs);
    this.#prober.unref();
  }

  /** How long the agent has been silent, in ms; null when it has no channel. */
  silentMs(agentId: string): number | null {
    const channel = this.#channels.get(agentId);
    return channel ? Math.max(0, Date.now() - channel.lastHeardAt) : null;
  }

  /**
   * Calls `listener` when an agent's channel opens (the control plane nudges its connection, which
   * itself reaches the agent through this hub). Answers the unsubscribe.
   */
  followConnected(listener: (agentId: string) => void): () => void {
    this.#connectedFollowers.add(listener);
    return () => this.#connectedFollowers.delete(listener);
  }

  /** `protocol`: the version both ends speak, as the handshake settled it. */
  attach(
    agentId: string,
    socket: ChannelSocket,
    protocol: ProtocolVersion,
    handlers: { heartbeat: (facts: Record<string, unknown>) => void } & RenewalHandlers,
  ): void {
    this.#channels.get(agentId)?.drop();
    if (!this.#watcher) {
      this.#lastWatch = Date.now();
      this.#watcher = setInterval(() => this.#watch(), this.#watchEveryMs);
      this.#watcher.unref();
    }
    const channel = new AgentChannel(socket, protocol, handlers.heartbeat, handlers, this.logger);
    this.#channels.set(agentId, channel);
    socket.on('close', () => {
      if (this.#channels.get(agentId) === channel) this.#channels.delete(agentId);
      this.logger.info({ agentId }, 'agent channel closed');
    });
    this.logger.info({ agentId, protocol: formatVersion(protocol) }, 'agent channel open');
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
    clearInterval(this.#prober);
    this.#prober = undefined;
    clearInterval(this.#watcher);
    this.#watcher = undefined;
    for (const channel of this.#channels.values()) channel.drop();
    this.#channels.clear();
  }
}
