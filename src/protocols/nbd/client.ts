/**
 * An NBD client over a stream socket (a unix socket, as QEMU's NBD server and
 * qemu-nbd offer one, or TCP): fixed-newstyle negotiation with structured
 * replies and metadata contexts (`base:allocation`, `qemu:dirty-bitmap:NAME`),
 * then pipelined reads, writes and block-status queries matched by cookie.
 * docs/decisions/0034-nbd-client.md says why it is written here.
 */
import { createConnection, type Socket } from 'node:net';
import { ZenithError, type ErrorCode } from '../../core/errors.js';
import {
  decodeGreeting,
  decodeInfo,
  decodeMetaContext,
  decodeOptionReplyHeader,
  decodeReply,
  encodeClientFlags,
  encodeGoData,
  encodeMetaContextData,
  encodeOption,
  encodeRequest,
  errnoName,
  GREETING_LENGTH,
  OPTION_REPLY_HEADER_LENGTH,
  REPLY_HEADER_MAX,
  replyFrameLength,
  type BlockStatusExtent,
  type Reply,
} from './codec.js';
import {
  CLIENT_FLAG_FIXED_NEWSTYLE,
  CLIENT_FLAG_NO_ZEROES,
  Command,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  Info,
  OPTION_REPLY_ERROR_BIT,
  Option,
  OptionReply,
  TransmissionFlag,
  optionErrorNames,
} from './constants.js';

export type NbdTarget = { path: string } | { host: string; port: number };

export interface NbdConnectOptions {
  /** The export to open ('' is the server's default export). */
  exportName?: string;
  /** Metadata contexts to negotiate; each must be granted, or the connection fails (NBD_OPTION_REFUSED). */
  metaContexts?: readonly string[];
  /** Time for connecting and negotiating (default 10 s). */
  handshakeTimeoutMs?: number;
}

/** One run of the disk with the same status in a context, at an absolute offset. */
export interface NbdExtent {
  offset: number;
  length: number;
  flags: number;
}

/** Reads and block-status queries longer than this are split (the protocol's safe maximum). */
const DEFAULT_MAX_REQUEST = 32 * 1024 * 1024;

interface PendingRequest {
  command: number;
  offset: number;
  length: number;
  /** A read's bytes, zero-filled: holes need nothing more. */
  data?: Buffer;
  extents?: BlockStatusExtent[];
  contextId?: number;
  error?: ZenithError;
  resolve: (request: PendingRequest) => void;
  reject: (error: ZenithError) => void;
}

function nbdError(
  code: ErrorCode,
  message: string,
  details: Record<string, unknown> = {},
): ZenithError {
  return new ZenithError(code, message, details);
}

export class NbdClient {
  /** The export's size in bytes. */
  readonly size: number;
  readonly transmissionFlags: number;
  /** The server's preferred and largest request sizes (NBD_INFO_BLOCK_SIZE), where it told them. */
  readonly blockSize: { minimum: number; preferred: number; maximum: number } | undefined;
  readonly #socket: Socket;
  readonly #incoming: Incoming;
  readonly #contexts: ReadonlyMap<string, number>;
  readonly #pending = new Map<bigint, PendingRequest>();
  /** Every request not answered yet, for close() to wait on. */
  readonly #inFlight = new Set<Promise<PendingRequest>>();
  #nextCookie = 1n;
  #closed: ZenithError | undefined;

  private constructor(socket: Socket, incoming: Incoming, negotiated: Negotiated) {
    this.#socket = socket;
    this.#incoming = incoming;
    this.size = negotiated.size;
    this.transmissionFlags = negotiated.transmissionFlags;
    this.blockSize = negotiated.blockSize;
    this.#contexts = negotiated.contexts;
    incoming.onData = () => this.#drain();
    incoming.onEnd = (error) => this.#fail(error);
    this.#drain();
  }

  static async connect(target: NbdTarget, options: NbdConnectOptions = {}): Promise<NbdClient> {
    const where = 'path' in target ? target.path : `${target.host}:${target.port}`;
    const socket =
      'path' in target ? createConnection({ path: target.path }) : createConnection(target);
    const incoming = new Incoming(socket);
    const timeoutMs = options.handshakeTimeoutMs ?? 10_000;
    const timer = setTimeout(
      () =>
        incoming.end(
          nbdError(
            'NBD_CONNECT_FAILED',
            `the NBD server at ${where} did not finish negotiating in ${timeoutMs} ms`,
            { where },
          ),
        ),
      timeoutMs,
    );
    try {
      const negotiated = await negotiate(socket, incoming, options, where);
      return new NbdClient(socket, incoming, negotiated);
    } catch (error) {
      socket.destroy();
      if (error instanceof ZenithError) {
        error.details.where = where;
        throw error;
      }
      throw nbdError(
        'NBD_CONNECT_FAILED',
        `cannot connect to the NBD server at ${where}: ${String(error)}`,
        { where },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  get readOnly(): boolean {
    return (this.transmissionFlags & TransmissionFlag.READ_ONLY) !== 0;
  }

  /** The metadata contexts the server granted, by name. */
  get metaContexts(): string[] {
    return [...this.#contexts.keys()];
  }

  get #maxRequest(): number {
    return Math.min(this.blockSize?.maximum ?? DEFAULT_MAX_REQUEST, DEFAULT_MAX_REQUEST);
  }

  /** Bytes of the export; holes read as zeroes. Longer reads are split into requests the server takes. */
  async read(offset: number, length: number): Promise<Buffer> {
    this.#checkRange(offset, length);
    if (length <= this.#maxRequest)
      return (await this.#request(Command.READ, offset, length)).data!;
    const parts: Promise<Buffer>[] = [];
    for (let at = offset; at < offset + length; at += this.#maxRequest) {
      const size = Math.min(this.#maxRequest, offset + length - at);
      parts.push(this.#request(Command.READ, at, size).then((request) => request.data!));
    }
    return Buffer.concat(await Promise.all(parts));
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, data.length);
    const pieces: Promise<unknown>[] = [];
    for (let at = 0; at < data.length; at += this.#maxRequest) {
      const piece = data.subarray(at, Math.min(data.length, at + this.#maxRequest));
      pieces.push(this.#request(Command.WRITE, offset + at, piece.length, piece));
    }
    await Promise.all(pieces);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, length);
    if ((this.transmissionFlags & TransmissionFlag.SEND_WRITE_ZEROES) === 0) {
      for (let at = offset; at < offset + length; at += this.#maxRequest) {
        await this.write(at, Buffer.alloc(Math.min(this.#maxRequest, offset + length - at)));
      }
      return;
    }
    const pieces: Promise<unknown>[] = [];
    // A zeroing request's length is 32 bits: 4 GiB less a block at most.
    const step = 0x8000_0000;
    for (let at = offset; at < offset + length; at += step) {
      pieces.push(this.#request(Command.WRITE_ZEROES, at, Math.min(step, offset + length - at)));
    }
    await Promise.all(pieces);
  }

  async flush(): Promise<void> {
    if ((this.transmissionFlags & TransmissionFlag.SEND_FLUSH) === 0) return;
    await this.#request(Command.FLUSH, 0, 0);
  }

  /**
   * The status of the disk from `offset` in one context, as the server answers one query: it may
   * cover less than `length` (ask again from where it ends) but never nothing.
   */
  async blockStatus(context: string, offset: number, length: number): Promise<NbdExtent[]> {
    const contextId = this.#contexts.get(context);
    if (contextId === undefined) {
      throw nbdError('NBD_OPTION_REFUSED', `the metadata context ${context} was not negotiated`, {
        context,
        negotiated: this.metaContexts,
      });
    }
    this.#checkRange(offset, length);
    const request = await this.#request(
      Command.BLOCK_STATUS,
      offset,
      Math.min(length, 0xffff_ffff),
      undefined,
      contextId,
    );
    const extents: NbdExtent[] = [];
    let at = offset;
    for (const extent of request.extents ?? []) {
      const clipped = Math.min(extent.length, offset + length - at);
      if (clipped <= 0) break;
      extents.push({ offset: at, length: clipped, flags: extent.flags });
      at += clipped;
    }
    if (extents.length === 0) {
      throw nbdError(
        'NBD_PROTOCOL_ERROR',
        `the NBD server answered no extent for ${context} at ${offset}`,
        {
          context,
          offset,
        },
      );
    }
    return extents;
  }

  /** Every extent of a context over a range (the whole export by default), adjacent ones of one status merged. */
  async *extents(
    context: string,
    offset = 0,
    length = this.size - offset,
  ): AsyncGenerator<NbdExtent> {
    let pending: NbdExtent | undefined;
    for (let at = offset; at < offset + length;) {
      for (const extent of await this.blockStatus(context, at, offset + length - at)) {
        if (pending && pending.flags === extent.flags) pending.length += extent.length;
        else {
          if (pending) yield pending;
          pending = { ...extent };
        }
        at = extent.offset + extent.length;
      }
    }
    if (pending) yield pending;
  }

  /** Ends the connection: NBD_CMD_DISC after every request in flight is answered (or the time is up). */
  async close(timeoutMs = 30_000): Promise<void> {
    if (this.#closed) return;
    // A server that stops answering does not hold the close: past the time, it ends at once.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>(
      (resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)),
    );
    const answered = await Promise.race([Promise.allSettled(this.#inFlight), late]);
    clearTimeout(timer);
    if (answered === 'late') return this.destroy();
    if (this.#closed) return;
    this.#closed = nbdError('NBD_CLOSED', 'the NBD client was closed');
    this.#socket.end(
      encodeRequest({ type: Command.DISC, cookie: this.#nextCookie++, offset: 0, length: 0 }),
    );
    this.#socket.destroySoon();
  }

  /** Ends the connection at once; requests in flight fail with NBD_CLOSED. */
  destroy(): void {
    this.#fail(nbdError('NBD_CLOSED', 'the NBD client was closed'));
  }

  #checkRange(offset: number, length: number): void {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.size
    ) {
      throw nbdError(
        'NBD_COMMAND_FAILED',
        `the range ${offset}+${length} is not within the export (${this.size} bytes)`,
        {
          offset,
          length,
          size: this.size,
          error: 'EINVAL',
        },
      );
    }
  }

  #checkWritable(): void {
    if (this.readOnly)
      throw nbdError('NBD_COMMAND_FAILED', 'the NBD export is read-only', { error: 'EPERM' });
  }

  #request(
    command: number,
    offset: number,
    length: number,
    data?: Uint8Array,
    contextId?: number,
  ): Promise<PendingRequest> {
    if (this.#closed) return Promise.reject(this.#closed);
    const cookie = this.#nextCookie++;
    const answered = new Promise<PendingRequest>((resolve, reject) => {
      const request: PendingRequest = { command, offset, length, resolve, reject };
      if (contextId !== undefined) request.contextId = contextId;
      this.#pending.set(cookie, request);
      this.#socket.write(encodeRequest({ type: command, cookie, offset, length }));
      if (data) this.#socket.write(data);
    });
    this.#inFlight.add(answered);
    const forget = () => this.#inFlight.delete(answered);
    answered.then(forget, forget);
    return answered;
  }

  #drain(): void {
    try {
      for (;;) {
        const head = this.#incoming.peek(REPLY_HEADER_MAX);
        const frameLength = replyFrameLength(head, (cookie) => {
          const request = this.#pending.get(cookie);
          return request?.command === Command.READ ? request.length : undefined;
        });
        if (frameLength === undefined || this.#incoming.length < frameLength) return;
        this.#settle(decodeReply(this.#incoming.take(frameLength)));
      }
    } catch (error) {
      this.#fail(
        error instanceof ZenithError ? error : nbdError('NBD_PROTOCOL_ERROR', String(error)),
      );
    }
  }

  #settle(reply: Reply): void {
    const request = this.#pending.get(reply.cookie);
    if (!request)
      throw nbdError(
        'NBD_PROTOCOL_ERROR',
        `a reply names a request that is not in flight (cookie ${reply.cookie})`,
      );
    if (reply.kind === 'simple') {
      this.#pending.delete(reply.cookie);
      if (reply.error !== 0)
        request.reject(this.#commandError(request, errnoName(reply.error), ''));
      else {
        if (request.command === Command.READ)
          // The frame's bytes are the request's own: taken as they are, not copied again.
          request.data =
            reply.data?.length === request.length
              ? reply.data
              : Buffer.concat([reply.data ?? Buffer.alloc(0)], request.length);
        request.resolve(request);
      }
      return;
    }
    const chunk = reply.chunk;
    switch (chunk.type) {
      case 'offset-data':
        if (
          request.command !== Command.READ ||
          chunk.offset < request.offset ||
          chunk.offset + chunk.data.length > request.offset + request.length
        ) {
          throw nbdError('NBD_PROTOCOL_ERROR', 'read data outside the range asked for', {
            offset: chunk.offset,
          });
        }
        // One piece of all of it (what servers send for data) is taken as it is; pieces are
        // gathered into a buffer of zeroes (a hole needs nothing more).
        if (request.data === undefined && chunk.data.length === request.length)
          request.data = chunk.data;
        else
          chunk.data.copy(
            (request.data ??= Buffer.alloc(request.length)),
            chunk.offset - request.offset,
          );
        break;
      case 'offset-hole':
        if (
          request.command !== Command.READ ||
          chunk.offset < request.offset ||
          chunk.offset + chunk.length > request.offset + request.length
        ) {
          throw nbdError('NBD_PROTOCOL_ERROR', 'a hole outside the range asked for', {
            offset: chunk.offset,
          });
        }
        break;
      case 'block-status':
        if (request.command !== Command.BLOCK_STATUS)
          throw nbdError(
            'NBD_PROTOCOL_ERROR',
            'block status for a request that did not ask for it',
          );
        if (chunk.contextId === request.contextId) request.extents = chunk.extents;
        break;
      case 'error':
        request.error ??= this.#commandError(request, chunk.errorName, chunk.message);
        break;
      case 'none':
      case 'unknown':
        break;
    }
    if (!reply.done) return;
    this.#pending.delete(reply.cookie);
    if (request.command === Command.READ) request.data ??= Buffer.alloc(request.length);
    if (request.error) request.reject(request.error);
    else request.resolve(request);
  }

  #commandError(request: PendingRequest, error: string, message: string): ZenithError {
    const command =
      Object.entries(Command).find(([, value]) => value === request.command)?.[0] ??
      String(request.command);
    return nbdError(
      'NBD_COMMAND_FAILED',
      `the NBD server refused ${command} at ${request.offset}+${request.length}: ${error}${message ? ` (${message})` : ''}`,
      {
        command,
        offset: request.offset,
        length: request.length,
        error,
        message,
      },
    );
  }

  #fail(error: ZenithError): void {
    if (!this.#closed) this.#closed = error;
    this.#socket.destroy();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const request of pending) request.reject(error);
  }
}

interface Negotiated {
  size: number;
  transmissionFlags: number;
  blockSize: { minimum: number; preferred: number; maximum: number } | undefined;
  contexts: Map<string, number>;
}

async function negotiate(
  socket: Socket,
  incoming: Incoming,
  options: NbdConnectOptions,
  where: string,
): Promise<Negotiated> {
  const { handshakeFlags } = decodeGreeting(await incoming.need(GREETING_LENGTH));
  if ((handshakeFlags & FLAG_FIXED_NEWSTYLE) === 0) {
    throw nbdError(
      'NBD_PROTOCOL_ERROR',
      `the NBD server at ${where} does not offer fixed newstyle negotiation`,
    );
  }
  socket.write(
    encodeClientFlags(
      CLIENT_FLAG_FIXED_NEWSTYLE | (handshakeFlags & FLAG_NO_ZEROES ? CLIENT_FLAG_NO_ZEROES : 0),
    ),
  );
  const exportName = options.exportName ?? '';
  const wanted = options.metaContexts ?? [];

  socket.write(encodeOption(Option.STRUCTURED_REPLY));
  const structured = await optionReplies(incoming, Option.STRUCTURED_REPLY, {
    allowUnsupported: wanted.length === 0,
  });

  const contexts = new Map<string, number>();
  if (wanted.length > 0) {
    if (!structured)
      refused(
        Option.STRUCTURED_REPLY,
        'NBD_REP_ERR_UNSUP',
        'structured replies, which metadata contexts need',
      );
    socket.write(encodeOption(Option.SET_META_CONTEXT, encodeMetaContextData(exportName, wanted)));
    await optionReplies(incoming, Option.SET_META_CONTEXT, {
      onReply(type, data) {
        if (type !== OptionReply.META_CONTEXT) return;
        const { id, name } = decodeMetaContext(data);
        contexts.set(name, id);
      },
    });
    const missing = wanted.filter((name) => !contexts.has(name));
    if (missing.length > 0) {
      throw nbdError(
        'NBD_OPTION_REFUSED',
        `the NBD server does not offer ${missing.join(', ')} on export '${exportName}'`,
        {
          option: 'NBD_OPT_SET_META_CONTEXT',
          missing,
        },
      );
    }
  }

  socket.write(encodeOption(Option.GO, encodeGoData(exportName, [Info.BLOCK_SIZE])));
  let size: number | undefined;
  let transmissionFlags = 0;
  let blockSize: Negotiated['blockSize'];
  await optionReplies(incoming, Option.GO, {
    onReply(type, data) {
      if (type !== OptionReply.INFO) return;
      const info = decodeInfo(data);
      if (info.type === 'export') {
        size = info.size;
        transmissionFlags = info.transmissionFlags;
      } else if (info.type === 'block-size') {
        blockSize = { minimum: info.minimum, preferred: info.preferred, maximum: info.maximum };
      }
    },
  });
  if (size === undefined)
    throw nbdError(
      'NBD_PROTOCOL_ERROR',
      'the NBD server did not tell the export size (NBD_INFO_EXPORT)',
    );
  return { size, transmissionFlags, blockSize, contexts };
}

function refused(option: number, reply: string, what: string): never {
  const name = Object.entries(Option).find(([, value]) => value === option)?.[0] ?? String(option);
  throw nbdError(
    'NBD_OPTION_REFUSED',
    `the NBD server refused ${what} (NBD_OPT_${name}: ${reply})`,
    {
      option: `NBD_OPT_${name}`,
      reply,
    },
  );
}

/**
 * Reads the replies to one option up to its ACK. Answers false when the server does not support
 * the option and that is allowed; any other error reply throws NBD_OPTION_REFUSED.
 */
async function optionReplies(
  incoming: Incoming,
  option: number,
  handling: { allowUnsupported?: boolean; onReply?: (type: number, data: Buffer) => void },
): Promise<boolean> {
  for (;;) {
    const header = decodeOptionReplyHeader(await incoming.need(OPTION_REPLY_HEADER_LENGTH));
    if (header.length > 64 * 1024)
      throw nbdError('NBD_PROTOCOL_ERROR', 'an option reply is longer than 64 KiB');
    const data = header.length > 0 ? await incoming.need(header.length) : Buffer.alloc(0);
    if (header.option !== option)
      throw nbdError(
        'NBD_PROTOCOL_ERROR',
        `a reply to option ${header.option} came while ${option} was asked`,
      );
    if (header.type >= OPTION_REPLY_ERROR_BIT) {
      const reply = optionErrorNames[header.type] ?? `error ${header.type}`;
      if (reply === 'NBD_REP_ERR_UNSUP' && handling.allowUnsupported) return false;
      const message = data.toString('utf8');
      refused(option, reply, message ? `the option: ${message}` : 'the option');
    }
    if (header.type === OptionReply.ACK) return true;
    handling.onReply?.(header.type, data);
  }
}

/** Bytes received and not yet decoded, kept as the chunks they came in (joined only when a frame is whole). */
class Incoming {
  onData: (() => void) | undefined;
  onEnd: ((error: ZenithError) => void) | undefined;
  #chunks: Buffer[] = [];
  #length = 0;
  #waiter:
    | { bytes: number; resolve: (data: Buffer) => void; reject: (error: ZenithError) => void }
    | undefined;
  #ended: ZenithError | undefined;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#length += chunk.length;
      if (this.#waiter && this.#length >= this.#waiter.bytes) {
        const { bytes, resolve } = this.#waiter;
        this.#waiter = undefined;
        resolve(this.take(bytes));
      }
      this.onData?.();
    });
    socket.on('error', (error: NodeJS.ErrnoException) =>
      this.end(
        nbdError(
          this.onData ? 'NBD_CLOSED' : 'NBD_CONNECT_FAILED',
          `the NBD connection failed: ${error.code ?? error.message}`,
          { reason: error.code ?? error.message },
        ),
      ),
    );
    socket.on('close', () =>
      this.end(nbdError('NBD_CLOSED', 'the NBD server closed the connection')),
    );
  }

  get length(): number {
    return this.#length;
  }

  end(error: ZenithError): void {
    if (this.#ended) return;
    this.#ended = error;
    this.#waiter?.reject(error);
    this.#waiter = undefined;
    this.onEnd?.(error);
  }

  /** The next `bytes` bytes, once they have come (negotiation reads this way). */
  need(bytes: number): Promise<Buffer> {
    if (this.#length >= bytes) return Promise.resolve(this.take(bytes));
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => (this.#waiter = { bytes, resolve, reject }));
  }

  /** Up to `bytes` bytes from the front, left in place. */
  peek(bytes: number): Buffer {
    if (this.#chunks.length === 0) return Buffer.alloc(0);
    if (this.#chunks[0]!.length >= bytes || this.#chunks.length === 1)
      return this.#chunks[0]!.subarray(0, bytes);
    return Buffer.concat(this.#chunks, Math.min(bytes, this.#length)).subarray(0, bytes);
  }

  /** Exactly `bytes` bytes from the front (there must be that many). */
  take(bytes: number): Buffer {
    const first = this.#chunks[0]!;
    let taken: Buffer;
    if (first.length >= bytes) {
      taken = first.subarray(0, bytes);
      if (first.length === bytes) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(bytes);
    } else {
      taken = Buffer.allocUnsafe(bytes);
      let filled = 0;
      while (filled < bytes) {
        const chunk = this.#chunks[0]!;
        const part = Math.min(chunk.length, bytes - filled);
        chunk.copy(taken, filled, 0, part);
        filled += part;
        if (part === chunk.length) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(part);
      }
    }
    this.#length -= bytes;
    return taken;
  }
}
