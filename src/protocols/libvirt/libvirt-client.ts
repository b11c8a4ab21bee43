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
import { decodeXdr } from '../xdr/xdr-types.js';
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
import type { CallOptions, EventMessageType, RemoteProcedure } from './procedure.js';
import { connectClose } from './procedures/connect.js';
import { KEEPALIVE_PROC, KEEPALIVE_VERSION } from './procedures/keepalive.js';
import { libvirtError, remoteError } from './remote-error.js';
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

interface PendingCall {
  procedure: RemoteProcedure<unknown, unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  stream: LibvirtStream | undefined;
  cancelTimer: (() => void) | undefined;
}

type RawListener = (packet: Packet) => void;

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
  readonly #pending = new Map<number, PendingCall>();
  readonly #streams = new Map<number, LibvirtStream>();
  readonly #abandoned = new Set<number>();
  readonly #listeners = new Map<string, Set<RawListener>>();
  readonly #readingPausedBy = new Set<object>();
  #transport: Duplex | undefined;
  #serial = 0;
  #keepalive: KeepaliveMonitor | undefined;
  readonly #keepaliveStats = { pingsReceived: 0, pongsSent: 0, pingsSent: 0, pongsReceived: 0 };
  #closeError: ZenithError | undefined;
  readonly #closed: Promise<ZenithError | undefined>;
  #markClosed!: (error: ZenithError | undefined) => void;

  private constructor(options: LibvirtClientOptions) {
    super();
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#splitter = new PacketSplitter(options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES);
    this.#state = new ConnectionStateMachine((state, previous) =>
      this.emit('state', state, previous),
    );
    this.#closed = new Promise((resolve) => (this.#markClosed = resolve));
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
      isReadingPaused: () => this.#readingPausedBy.size > 0,
    });
    this.#keepalive.start();
  }

  /** Calls a procedure and resolves with its decoded reply; libvirt errors reject with LIBVIRT_RPC_ERROR. */
  call<A, R>(procedure: RemoteProcedure<A, R>, args: A, options: CallOptions = {}): Promise<R> {
    return this.#call(procedure, args, options, undefined);
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
      await this.#call(procedure, args, options, stream, serial);
    } catch (error) {
      this.#streams.delete(serial);
      throw error;
    }
    return stream;
  }

  /** Listens to one kind of event message; returns the function that stops listening. */
  onEvent<M>(type: EventMessageType<M>, listener: (message: M) => void): () => void {
    const key = `${type.program}:${type.procedure}`;
    const raw: RawListener = (packet) => {
      let message: M;
      try {
        message = decodeXdr(type.message, packet.payload);
      } catch (error) {
        this.#finish(
          protocolError(`undecodable ${type.name} event: ${(error as Error).message}`, {
            event: type.name,
          }),
        );
        return;
      }
      try {
        listener(message);
      } catch (error) {
        this.emit('listenerError', error);
      }
    };
    let set = this.#listeners.get(key);
    if (!set) this.#listeners.set(key, (set = new Set()));
    set.add(raw);
    return () => {
      set.delete(raw);
    };
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
        await this.#call(connectClose, undefined, { timeoutMs: 2000 }, undefined, undefined, true);
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
    this.#transport = transport;
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
    if (packets.length > 0) this.#keepalive?.noteReceived();
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
        this.#onReply(packet);
        return;
      case MESSAGE_TYPE.message:
        this.#onMessage(packet);
        return;
      case MESSAGE_TYPE.stream: {
        const stream = this.#streams.get(header.serial);
        if (stream) stream.handlePacket(packet);
        else if (!this.#abandoned.has(header.serial)) {
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

  #onReply(packet: Packet): void {
    const { serial, status } = packet.header;
    const pending = this.#pending.get(serial);
    if (!pending) {
      if (this.#abandoned.delete(serial)) return;
      throw protocolError(`reply for unknown serial ${serial}`, {
        serial,
        procedure: packet.header.procedure,
      });
    }
    this.#pending.delete(serial);
    pending.cancelTimer?.();
    if (status === MESSAGE_STATUS.ok) {
      let value: unknown;
      try {
        value = decodeXdr(pending.procedure.ret, packet.payload);
      } catch (error) {
        // The framing is intact: only this call failed.
        pending.reject(error);
        return;
      }
      pending.resolve(value);
      return;
    }
    if (status === MESSAGE_STATUS.error) {
      let error: ZenithError;
      try {
        error = libvirtError(decodeXdr(remoteError, packet.payload), pending.procedure.name);
      } catch (decodeFailure) {
        error = decodeFailure as ZenithError;
      }
      pending.reject(error);
      return;
    }
    pending.reject(protocolError(`reply with status ${status}`, { serial, status }));
  }

  #onMessage(packet: Packet): void {
    const listeners = this.#listeners.get(`${packet.header.program}:${packet.header.procedure}`);
    if (!listeners || listeners.size === 0) {
      this.emit('unhandledMessage', packet);
      return;
    }
    for (const listener of [...listeners]) listener(packet);
  }

  #call<A, R>(
    procedure: RemoteProcedure<A, R>,
    args: A,
    options: CallOptions,
    stream: LibvirtStream | undefined,
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
    return new Promise<R>((resolve, reject) => {
      const pending: PendingCall = {
        procedure,
        resolve: resolve as (value: unknown) => void,
        reject,
        stream,
        cancelTimer: undefined,
      };
      const timeoutMs = options.timeoutMs ?? this.#options.callTimeoutMs;
      const abandon = (error: Error) => {
        if (this.#pending.get(serial) !== pending) return;
        this.#pending.delete(serial);
        this.#abandoned.add(serial);
        pending.cancelTimer?.();
        reject(error);
      };
      if (timeoutMs !== undefined || options.signal) {
        const timer = new AbortController();
        pending.cancelTimer = () => timer.abort();
        if (timeoutMs !== undefined) {
          this.#clock.sleep(timeoutMs, timer.signal).then(
            () =>
              abandon(
                new ZenithError(
                  'LIBVIRT_RPC_TIMEOUT',
                  `${procedure.name} got no reply within ${timeoutMs} ms`,
                  {
                    procedure: procedure.name,
                    timeoutMs,
                  },
                ),
              ),
            () => undefined,
          );
        }
        if (options.signal) {
          const signal = options.signal;
          const onAbort = () =>
            abandon(signal.reason instanceof Error ? signal.reason : new Error('call aborted'));
          if (signal.aborted) {
            onAbort();
            return;
          }
          signal.addEventListener('abort', onAbort, { once: true });
          timer.signal.addEventListener(
            'abort',
            () => signal.removeEventListener('abort', onAbort),
            { once: true },
          );
        }
      }
      this.#pending.set(serial, pending);
      this.#write(packet);
    });
  }

  #write(packet: Buffer): boolean {
    const transport = this.#transport;
    if (!transport || transport.destroyed || this.state === 'closed') return true;
    return transport.write(packet);
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
      new Promise<void>((resolve, reject) => {
        const transport = this.#transport;
        if (!transport || this.state === 'closed') {
          reject(this.#closeError ?? closedError('connection is closed'));
          return;
        }
        if (!transport.writableNeedDrain) {
          resolve();
          return;
        }
        const onDrain = () => {
          transport.off('close', onClose);
          resolve();
        };
        const onClose = () => {
          transport.off('drain', onDrain);
          reject(this.#closeError ?? closedError('connection is closed'));
        };
        transport.once('drain', onDrain);
        transport.once('close', onClose);
      }),
    pauseReading: (owner: object) => {
      this.#readingPausedBy.add(owner);
      this.#transport?.pause();
    },
    resumeReading: (owner: object) => {
      if (!this.#readingPausedBy.delete(owner)) return;
      if (this.#readingPausedBy.size === 0 && this.state !== 'closed') this.#transport?.resume();
    },
    release: (serial: number) => {
      this.#streams.delete(serial);
      this.#abandoned.add(serial);
    },
  };

  /** Ends everything exactly once: pending calls and streams fail, the transport is destroyed. */
  #finish(error: ZenithError | undefined): void {
    if (this.state === 'closed') return;
    this.#closeError = error ?? closedError('closed by the client');
    this.#keepalive?.stop();
    this.#state.moveTo('closed');
    const failure = this.#closeError;
    for (const [serial, pending] of this.#pending) {
      this.#pending.delete(serial);
      pending.cancelTimer?.();
      pending.reject(failure);
    }
    for (const stream of this.#streams.values()) stream.abortWith(failure);
    this.#streams.clear();
    this.#readingPausedBy.clear();
    const transport = this.#transport;
    if (transport && !transport.destroyed) {
      transport.end();
      transport.destroy();
    }
    this.#markClosed(error);
    this.emit('close', error);
  }
}
