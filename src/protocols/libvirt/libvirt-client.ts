/**
 * A client of the libvirt remote protocol over any Duplex (unix socket, TCP,
 * TLS, an SSH tunnel). Many calls in flight are matched to replies by serial;
 * events are routed by program and procedure; keepalive answers the daemon's
 * PINGs and sends our own; streams are Node Duplexes.
 *
 *   const client = await LibvirtClient.connect(() => connectUnixSocket(path), { uri: 'qemu:///system' });
 *   const { dom } = await client.call(domainLookupByName, { name: 'web-1' });
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { systemClock, type Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { ConnectionStateMachine, type LibvirtConnectionState } from './connection-state.js';
import { DEFAULT_KEEPALIVE, KeepaliveMonitor, type KeepaliveOptions } from './keepalive.js';
import { LibvirtStream, type StreamChannel } from './libvirt-stream.js';
import {
  DEFAULT_MAX_PACKET_BYTES,
  LIBVIRT_PROGRAM,
  MESSAGE_STATUS,
  MESSAGE_TYPE,
  encodePacket,
  encodeRawPacket,
  protocolError,
  type MessageStatus,
  type Packet,
} from './packet.js';
import { PacketSplitter } from './packet-splitter.js';
import { EventRouter } from './event-router.js';
import { PendingCalls } from './pending-calls.js';
import { TransportFlow } from './transport-flow.js';
import type { CallOptions, EventMessageType, RemoteProcedure } from './procedure.js';
import { connectClose } from './procedures/connect.js';
import { KEEPALIVE_PROC, KEEPALIVE_VERSION } from './procedures/keepalive.js';
import { performHandshake, type HandshakeOptions } from './handshake.js';

export interface LibvirtClientOptions {
  clock?: Clock;
  /** false disables our pings (we still answer the daemon's). */
  keepalive?: false | Partial<KeepaliveOptions>;
  /** Largest packet accepted from the peer, not counting the length word. */
  maxPacketBytes?: number;
  /** Default time limit of a call; none when absent (migrations can take long). */
  callTimeoutMs?: number;
}

export type { CallOptions } from './procedure.js';

export interface LibvirtConnectOptions extends LibvirtClientOptions, HandshakeOptions {}

export type TransportSource = Duplex | (() => Duplex | Promise<Duplex>);

function closedError(reason: string, details: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('LIBVIRT_RPC_CLOSED', `libvirt connection closed: ${reason}`, {
    reason,
    ...details,
  });
}

export class LibvirtClient extends EventEmitter {
  readonly #state: ConnectionStateMachine;
  readonly #clock: Clock;
  readonly #options: LibvirtClientOptions;
  readonly #splitter: PacketSplitter;
  readonly #pending: PendingCalls;
  readonly #streams = new Map<number, LibvirtStream>();
  readonly #events = new EventRouter({
    onUndecodable: (error) => this.#finish(error as ZenithError),
    onListenerError: (error) => this.emit('listenerError', error),
  });
  #flow: TransportFlow | undefined;
  #serial = 0;
  #keepalive: KeepaliveMonitor | undefined;
  /** When the last packet arrived from the daemon (the clock's time; the connection's start before). */
  #lastReceivedAt: number;
  readonly #keepaliveStats = { pingsReceived: 0, pongsSent: 0, pingsSent: 0, pongsReceived: 0 };
  #closeError: ZenithError | undefined;
  readonly #closed: Promise<ZenithError | undefined>;
  #markClosed!: (error: ZenithError | undefined) => void;

  private constructor(options: LibvirtClientOptions) {
    super();
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#pending = new PendingCalls(this.#clock);
    this.#splitter = new PacketSplitter(options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES);
    this.#state = new ConnectionStateMachine((state, previous) =>
      this.emit('state', state, previous),
    );
    this.#closed = new Promise((resolve) => (this.#markClosed = resolve));
    this.#lastReceivedAt = this.#clock.now();
  }

  /**
   * Establishes the transport, authenticates, opens the libvirt connection
   * (CONNECT_OPEN with `uri`) and starts keepalive when the daemon supports it.
   */
  static async connect(
    source: TransportSource,
    options: LibvirtConnectOptions = {},
  ): Promise<LibvirtClient> {
    const client = new LibvirtClient(options);
    let transport: Duplex;
    try {
      transport = typeof source === 'function' ? await source() : source;
    } catch (error) {
      client.#finish(closedError('transport failed'));
      if (error instanceof ZenithError) throw error;
      throw new ZenithError(
        'LIBVIRT_RPC_CONNECT_FAILED',
        `cannot reach libvirt: ${(error as Error).message}`,
        {},
        {
          cause: error,
        },
      );
    }
    client.#attach(transport);
    try {
      client.#state.moveTo('authenticating');
      const { keepaliveSupported } = await performHandshake(client, options);
      client.#state.moveTo('open');
      if (options.keepalive !== false && keepaliveSupported) client.startKeepalive();
    } catch (error) {
      client.#finish(error instanceof ZenithError ? error : closedError('handshake failed'));
      throw error;
    }
    return client;
  }

  get state(): LibvirtConnectionState {
    return this.#state.state;
  }

  /** Resolves when the connection is closed: undefined after close(), else the error that closed it. */
  get closed(): Promise<ZenithError | undefined> {
    return this.#closed;
  }

  /**
   * When the daemon was last heard (any packet, a keepalive pong among them): with keepalive on,
   * the daemon is asked after each interval of silence, so this tells how alive it is now.
   */
  get lastReceivedAt(): number {
    return this.#lastReceivedAt;
  }

  /** Calls currently waiting for a reply. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Keepalive traffic so far: the daemon's pings we answered and our own pings. */
  get keepaliveStats(): {
    pingsReceived: number;
    pongsSent: number;
    pingsSent: number;
    pongsReceived: number;
  } {
    return { ...this.#keepaliveStats };
  }

  /** Streams whose serial is still routed (not yet finished or aborted). */
  get openStreams(): number {
    return this.#streams.size;
  }

  /** Starts our keepalive pings (done by connect() when the daemon supports keepalive). */
  startKeepalive(): void {
    if (this.#keepalive || this.#options.keepalive === false) return;
    const options = { ...DEFAULT_KEEPALIVE, ...(this.#options.keepalive ?? {}) };
    this.#keepalive = new KeepaliveMonitor(this.#clock, options, {
      sendPing: () => {
        this.#keepaliveStats.pingsSent += 1;
        this.#sendKeepalive(KEEPALIVE_PROC.ping);
      },
      onPeerDead: (silentForMs) =>
        this.#finish(
          closedError('peer missed keepalive', {
            silentForMs,
            intervalMs: options.intervalMs,
            maxMissed: options.maxMissed,
          }),
        ),
      isReadingPaused: () => this.#flow?.readingPaused ?? false,
    });
    this.#keepalive.start();
  }

  /** Calls a procedure and resolves with its decoded reply; libvirt errors reject with LIBVIRT_RPC_ERROR. */
  call<A, R>(procedure: RemoteProcedure<A, R>, args: A, options: CallOptions = {}): Promise<R> {
    return this.#call(procedure, args, options);
  }

  /**
   * Calls a streaming procedure (volume upload/download, console) and resolves
   * with its stream once the daemon accepted the call.
   */
  async openStream<A>(
    procedure: RemoteProcedure<A, unknown>,
    args: A,
    options: CallOptions = {},
  ): Promise<LibvirtStream> {
    const serial = this.#nextSerial();
    const stream = new LibvirtStream(this.#streamChannel, serial, procedure.procedure);
    this.#streams.set(serial, stream);
    try {
      await this.#call(procedure, args, options, serial);
    } catch (error) {
      this.#streams.delete(serial);
      throw error;
    }
    return stream;
  }

  /** Listens to one kind of event message; returns the function that stops listening. */
  onEvent<M>(type: EventMessageType<M>, listener: (message: M) => void): () => void {
    return this.#events.on(type, listener);
  }

  /** Closes the libvirt connection (CONNECT_CLOSE) and the transport; pending calls fail with LIBVIRT_RPC_CLOSED. */
  async close(): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') {
      await this.#closed;
      return;
    }
    const wasOpen = this.state === 'open';
    this.#state.moveTo('closing');
    this.#keepalive?.stop();
    if (wasOpen) {
      try {
        await this.#call(connectClose, undefined, { timeoutMs: 2000 }, undefined, true);
      } catch {
        // The daemon may already be gone; closing continues.
      }
    }
    this.#finish(undefined);
    await this.#closed;
  }

  // --- internals ---------------------------------------------------------

  #isClosed(): boolean {
    return this.#state.state === 'closed';
  }

  #nextSerial(): number {
    this.#serial = (this.#serial + 1) >>> 0;
    return this.#serial;
  }

  #attach(transport: Duplex): void {
    this.#flow = new TransportFlow(transport);
    transport.on('data', (chunk: Buffer) => this.#receive(chunk));
    transport.on('error', (error: Error) =>
      this.#finish(closedError(`transport error: ${error.message}`, { cause: error.message })),
    );
    transport.on('close', () => this.#onTransportEnded());
    transport.on('end', () => this.#onTransportEnded());
    // A transport handed over after a 'readable' handshake (TLS verdict byte) is not flowing yet.
    transport.resume();
  }

  #onTransportEnded(): void {
    if (this.state === 'closed') return;
    if (this.#splitter.buffered > 0) {
      this.#finish(
        protocolError(
          `peer closed the connection in the middle of a packet (${this.#splitter.buffered} bytes)`,
          {
            bufferedBytes: this.#splitter.buffered,
          },
        ),
      );
      return;
    }
    this.#finish(closedError('peer closed the connection'));
  }

  #receive(chunk: Buffer): void {
    if (this.state === 'closed') return;
    let packets: Packet[];
    try {
      packets = this.#splitter.push(chunk);
    } catch (error) {
      this.#finish(error as ZenithError);
      return;
    }
    if (packets.length > 0) {
      this.#lastReceivedAt = this.#clock.now();
      this.#keepalive?.noteReceived();
    }
    for (const packet of packets) {
      if (this.#isClosed()) return;
      try {
        this.#dispatch(packet);
      } catch (error) {
        this.#finish(
          error instanceof ZenithError
            ? error
            : protocolError(`cannot handle packet: ${(error as Error).message}`),
        );
        return;
      }
    }
  }

  #dispatch(packet: Packet): void {
    const { header } = packet;
    if (header.program === LIBVIRT_PROGRAM.keepalive) {
      if (header.type === MESSAGE_TYPE.message && header.procedure === KEEPALIVE_PROC.ping) {
        this.#keepaliveStats.pingsReceived += 1;
        this.#sendKeepalive(KEEPALIVE_PROC.pong);
        this.#keepaliveStats.pongsSent += 1;
      } else if (header.procedure === KEEPALIVE_PROC.pong) {
        this.#keepaliveStats.pongsReceived += 1;
      }
      return; // a PONG only proves liveness, already noted
    }
    switch (header.type) {
      case MESSAGE_TYPE.reply:
      case MESSAGE_TYPE.replyWithFds:
        this.#pending.settle(packet);
        return;
      case MESSAGE_TYPE.message:
        this.#onMessage(packet);
        return;
      case MESSAGE_TYPE.stream: {
        const stream = this.#streams.get(header.serial);
        if (stream) stream.handlePacket(packet);
        else if (!this.#pending.isForgotten(header.serial)) {
          throw protocolError(`stream packet for unknown serial ${header.serial}`, {
            serial: header.serial,
          });
        }
        return;
      }
      default:
        throw protocolError(`unexpected message type ${header.type} from the daemon`, {
          type: header.type,
        });
    }
  }

  #onMessage(packet: Packet): void {
    if (!this.#events.dispatch(packet)) this.emit('unhandledMessage', packet);
  }

  #call<A, R>(
    procedure: RemoteProcedure<A, R>,
    args: A,
    options: CallOptions,
    presetSerial?: number,
    duringClose = false,
  ): Promise<R> {
    const allowed =
      this.state === 'open' ||
      this.state === 'authenticating' ||
      (duringClose && this.state === 'closing');
    if (!allowed) {
      return Promise.reject(
        this.#closeError ?? closedError(`connection is ${this.state}`, { state: this.state }),
      );
    }
    const serial = presetSerial ?? this.#nextSerial();
    let packet: Buffer;
    try {
      packet = encodePacket(
        {
          program: procedure.program,
          version: procedure.version,
          procedure: procedure.procedure,
          type: MESSAGE_TYPE.call,
          serial,
          status: MESSAGE_STATUS.ok,
        },
        (writer) => procedure.args.encode(writer, args),
      );
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const reply = this.#pending.add(serial, procedure, {
      ...options,
      ...(options.timeoutMs === undefined && this.#options.callTimeoutMs !== undefined
        ? { timeoutMs: this.#options.callTimeoutMs }
        : {}),
    });
    this.#write(packet);
    return reply;
  }

  #write(packet: Buffer): boolean {
    return this.#flow?.write(packet) ?? true;
  }

  #sendKeepalive(procedure: number): void {
    this.#write(
      encodePacket({
        program: LIBVIRT_PROGRAM.keepalive,
        version: KEEPALIVE_VERSION,
        procedure,
        type: MESSAGE_TYPE.message,
        serial: 0,
        status: MESSAGE_STATUS.ok,
      }),
    );
  }

  readonly #streamChannel: StreamChannel = {
    sendStreamPacket: (
      serial: number,
      procedure: number,
      status: MessageStatus,
      payload: Uint8Array,
    ) =>
      this.#write(
        encodeRawPacket(
          {
            program: LIBVIRT_PROGRAM.remote,
            version: 1,
            procedure,
            type: MESSAGE_TYPE.stream,
            serial,
            status,
          },
          payload,
        ),
      ),
    waitForDrain: () =>
      this.#flow
        ? this.#flow.waitForDrain(() => this.#closeError ?? closedError('connection is closed'))
        : Promise.reject(closedError('connection is closed')),
    pauseReading: (owner: object) => this.#flow?.pauseReading(owner),
    resumeReading: (owner: object) => this.#flow?.resumeReading(owner),
    release: (serial: number) => {
      this.#streams.delete(serial);
      this.#pending.forget(serial);
    },
  };

  /** Ends everything exactly once: pending calls and streams fail, the transport is destroyed. */
  #finish(error: ZenithError | undefined): void {
    if (this.state === 'closed') return;
    this.#closeError = error ?? closedError('closed by the client');
    this.#keepalive?.stop();
    this.#state.moveTo('closed');
    const failure = this.#closeError;
    this.#pending.failAll(failure);
    for (const stream of this.#streams.values()) stream.abortWith(failure);
    this.#streams.clear();
    this.#flow?.close();
    this.#markClosed(error);
    this.emit('close', error);
  }
}
