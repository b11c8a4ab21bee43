/**
 * A scripted libvirt daemon on a local unix socket, for the faults a real
 * daemon never commits: truncated, oversized or garbage packets, silence,
 * replies out of order. It speaks through the same packet codec as the client.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PacketSplitter } from '../protocols/libvirt/packet-splitter.js';
import {
  LIBVIRT_PROGRAM,
  MESSAGE_STATUS,
  MESSAGE_TYPE,
  encodePacket,
  encodeRawPacket,
  type MessageStatus,
  type Packet,
  type PacketHeader,
} from '../protocols/libvirt/packet.js';
import type { EventMessageType, RemoteProcedure } from '../protocols/libvirt/procedure.js';
import {
  authList,
  connectOpen,
  connectSupportsFeature,
} from '../protocols/libvirt/procedures/connect.js';
import { remoteError, type RemoteError } from '../protocols/libvirt/remote-error.js';

export class FakePeerConnection {
  readonly socket: Socket;
  readonly #splitter = new PacketSplitter();
  readonly #queue: Packet[] = [];
  #waiters: ((packet: Packet) => void)[] = [];

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (const packet of this.#splitter.push(chunk)) {
        const waiter = this.#waiters.shift();
        if (waiter) waiter(packet);
        else this.#queue.push(packet);
      }
    });
    socket.on('error', () => undefined);
  }

  /** The next packet the client sent. */
  nextPacket(): Promise<Packet> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The next packet that is not keepalive traffic. */
  async nextCall(): Promise<Packet> {
    for (;;) {
      const packet = await this.nextPacket();
      if (packet.header.program !== LIBVIRT_PROGRAM.keepalive) return packet;
    }
  }

  sendBytes(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  send(header: PacketHeader, payload: Uint8Array = Buffer.alloc(0)): void {
    this.socket.write(encodeRawPacket(header, payload));
  }

  reply<R>(call: Packet, procedure: RemoteProcedure<unknown, R>, value: R): void {
    this.socket.write(
      encodePacket(
        { ...call.header, type: MESSAGE_TYPE.reply, status: MESSAGE_STATUS.ok },
        (writer) => procedure.ret.encode(writer, value),
      ),
    );
  }

  replyError(call: Packet, error: Partial<RemoteError> & { code: number; message: string }): void {
    const full: RemoteError = {
      domain: 0,
      level: 2,
      dom: null,
      str1: null,
      str2: null,
      str3: null,
      int1: 0,
      int2: 0,
      net: null,
      ...error,
    };
    this.socket.write(
      encodePacket(
        { ...call.header, type: MESSAGE_TYPE.reply, status: MESSAGE_STATUS.error },
        (writer) => remoteError.encode(writer, full),
      ),
    );
  }

  event<M>(type: EventMessageType<M>, message: M, serial = 0): void {
    this.socket.write(
      encodePacket(
        {
          program: type.program,
          version: 1,
          procedure: type.procedure,
          type: MESSAGE_TYPE.message,
          serial,
          status: MESSAGE_STATUS.ok,
        },
        (writer) => type.message.encode(writer, message),
      ),
    );
  }

  streamPacket(call: Packet, status: MessageStatus, payload: Uint8Array = Buffer.alloc(0)): void {
    this.send({ ...call.header, type: MESSAGE_TYPE.stream, status }, payload);
  }

  /** Answers AUTH_LIST (with `authTypes`), CONNECT_OPEN and the keepalive feature question. */
  async serveHandshake(
    options: { authTypes?: (0 | 1 | 2)[]; keepalive?: boolean } = {},
  ): Promise<void> {
    const auth = await this.nextCall();
    this.reply(auth, authList, { types: options.authTypes ?? [0] });
    if (options.authTypes && !options.authTypes.includes(0)) return;
    const open = await this.nextCall();
    this.reply(open, connectOpen, undefined);
    const feature = await this.nextCall();
    this.reply(feature, connectSupportsFeature, { supported: options.keepalive ? 1 : 0 });
  }

  close(): void {
    this.socket.end();
  }
}

export class FakeLibvirtPeer {
  readonly path: string;
  readonly #server: Server;
  readonly #directory: string;
  readonly #connections: FakePeerConnection[] = [];
  readonly #sockets = new Set<Socket>();
  #waiters: ((connection: FakePeerConnection) => void)[] = [];

  private constructor(server: Server, directory: string) {
    this.#server = server;
    this.#directory = directory;
    this.path = join(directory, 'libvirt-sock');
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      const connection = new FakePeerConnection(socket);
      const waiter = this.#waiters.shift();
      if (waiter) waiter(connection);
      else this.#connections.push(connection);
    });
  }

  static async start(): Promise<FakeLibvirtPeer> {
    const directory = await mkdtemp(join(tmpdir(), 'zenith-fake-libvirt-'));
    const peer = new FakeLibvirtPeer(createServer(), directory);
    await new Promise<void>((resolve, reject) => {
      peer.#server.once('error', reject);
      peer.#server.listen(peer.path, () => resolve());
    });
    return peer;
  }

  nextConnection(): Promise<FakePeerConnection> {
    const ready = this.#connections.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      for (const socket of this.#sockets) socket.destroy();
    });
    await rm(this.#directory, { recursive: true, force: true });
  }
}
