import { Duplex } from 'node:stream';

/**
 * The far end of an in-memory byte stream, scripted by a test: it plays QEMU's
 * side for behaviours real QEMU will not show on demand (silence until a
 * timeout, garbage, oversized lines). Tests of normal behaviour use real QEMU.
 */
export class ScriptedPeer {
  readonly clientSide: Duplex;
  readonly received: string[] = [];
  #waiters: Array<() => void> = [];
  #partial = '';

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const peer = this;
    this.clientSide = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        peer.#partial += chunk.toString('utf8');
        let newline = peer.#partial.indexOf('\n');
        while (newline !== -1) {
          peer.received.push(peer.#partial.slice(0, newline));
          peer.#partial = peer.#partial.slice(newline + 1);
          newline = peer.#partial.indexOf('\n');
        }
        for (const wake of peer.#waiters.splice(0)) wake();
        callback();
      },
    });
  }

  /** Sends raw bytes to the client. */
  send(text: string | Buffer): void {
    this.clientSide.push(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
  }

  sendJson(value: unknown): void {
    this.send(`${JSON.stringify(value)}\r\n`);
  }

  greet(capabilities: string[] = ['oob']): void {
    this.sendJson({
      QMP: { version: { qemu: { major: 7, minor: 2, micro: 19 }, package: 'test' }, capabilities },
    });
  }

  /** Waits until the client has sent `count` commands in total, and returns the last one parsed. */
  async command(
    count: number,
  ): Promise<{ execute?: string; 'exec-oob'?: string; arguments?: unknown; id: string }> {
    while (this.received.length < count) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    return JSON.parse(this.received[count - 1]!);
  }

  /** The peer hangs up, as QEMU does when it exits. */
  hangUp(): void {
    this.clientSide.push(null);
  }
}
