/**
 * A libvirt data stream (volume upload/download, console) as a Node Duplex.
 * Stream packets share the call's serial. Data flows as STREAM/CONTINUE packets;
 * an empty CONTINUE from the daemon is end-of-data, which we acknowledge with
 * STREAM/OK; the daemon confirms with STREAM/OK (only then does the readable
 * side end), as it confirms our own finish of an upload; STREAM/ERROR carries
 * a remote_error.
 *
 * Back-pressure: writes wait for the transport to drain; when the reader does
 * not keep up, the whole connection stops reading (libvirt has no per-stream
 * window), so a slow reader also delays other calls on the same connection.
 */
import { Duplex } from 'node:stream';
import type { ZenithError } from '../../core/errors.js';
import { decodeXdr } from '../xdr/xdr-types.js';
import { MESSAGE_STATUS, STREAM_CHUNK_BYTES, type MessageStatus, type Packet } from './packet.js';
import { libvirtError, remoteError } from './remote-error.js';

/** What a stream needs from its connection. */
export interface StreamChannel {
  /** Sends one STREAM packet; false when the transport's buffer is full. */
  sendStreamPacket(
    serial: number,
    procedure: number,
    status: MessageStatus,
    payload: Uint8Array,
  ): boolean;
  waitForDrain(): Promise<void>;
  pauseReading(owner: object): void;
  resumeReading(owner: object): void;
  /** The stream is done with its serial; later packets for it are dropped. */
  release(serial: number): void;
}

export class LibvirtStream extends Duplex {
  readonly serial: number;
  readonly procedure: number;
  readonly #channel: StreamChannel;
  #finishSent = false;
  #finished = false;
  #onFinishConfirmed: ((error?: Error) => void) | undefined;
  #failure: Error | undefined;

  constructor(channel: StreamChannel, serial: number, procedure: number) {
    super({ allowHalfOpen: true });
    this.#channel = channel;
    this.serial = serial;
    this.procedure = procedure;
  }

  /** Called by the connection for every STREAM packet with this serial. */
  handlePacket(packet: Packet): void {
    const { status } = packet.header;
    if (status === MESSAGE_STATUS.continue) {
      if (packet.payload.length === 0) {
        // Empty CONTINUE: no more data. The daemon waits for our OK before it confirms the end
        // with its own OK; the readable side ends then, so errors at the end still surface.
        this.#sendFinish();
        return;
      }
      if (!this.push(packet.payload)) this.#channel.pauseReading(this);
      return;
    }
    if (status === MESSAGE_STATUS.ok) {
      this.#finished = true;
      this.#channel.resumeReading(this);
      this.#channel.release(this.serial);
      this.push(null);
      const confirm = this.#onFinishConfirmed;
      this.#onFinishConfirmed = undefined;
      confirm?.();
      return;
    }
    let error: ZenithError;
    try {
      error = libvirtError(decodeXdr(remoteError, packet.payload), 'stream');
    } catch (decodeFailure) {
      error = decodeFailure as ZenithError;
    }
    this.#fail(error);
  }

  /** The connection is gone: the stream fails with the connection's error. */
  abortWith(error: Error): void {
    this.#fail(error);
  }

  /** Our empty OK, sent once: the end of the stream on our side (after reading or writing). */
  #sendFinish(): void {
    if (this.#finishSent) return;
    this.#finishSent = true;
    this.#channel.sendStreamPacket(this.serial, this.procedure, MESSAGE_STATUS.ok, Buffer.alloc(0));
  }

  #fail(error: Error): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#failure = error;
    this.#channel.resumeReading(this);
    this.#channel.release(this.serial);
    const confirm = this.#onFinishConfirmed;
    this.#onFinishConfirmed = undefined;
    confirm?.(error);
    this.destroy(error);
  }

  override _read(): void {
    this.#channel.resumeReading(this);
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    if (this.#failure) {
      callback(this.#failure);
      return;
    }
    let flushed = true;
    for (let offset = 0; offset < chunk.length; offset += STREAM_CHUNK_BYTES) {
      const piece = chunk.subarray(offset, offset + STREAM_CHUNK_BYTES);
      flushed = this.#channel.sendStreamPacket(
        this.serial,
        this.procedure,
        MESSAGE_STATUS.continue,
        piece,
      );
    }
    if (flushed) {
      callback();
      return;
    }
    this.#channel.waitForDrain().then(
      () => callback(this.#failure),
      (error: unknown) => callback(error as Error),
    );
  }

  /** end(): tell the daemon we are done, and wait until it confirms the data is committed. */
  override _final(callback: (error?: Error | null) => void): void {
    if (this.#failure) {
      callback(this.#failure);
      return;
    }
    if (this.#finished) {
      callback();
      return;
    }
    this.#onFinishConfirmed = (error) => callback(error ?? null);
    this.#sendFinish();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#finished) {
      // Abort: an empty STREAM/ERROR tells the daemon to drop the transfer.
      this.#finished = true;
      this.#channel.sendStreamPacket(
        this.serial,
        this.procedure,
        MESSAGE_STATUS.error,
        Buffer.alloc(0),
      );
      this.#channel.resumeReading(this);
      this.#channel.release(this.serial);
    }
    callback(error);
  }
}
