/**
 * The test guest's serial console as a user reads it: the `tick N` lines it
 * prints every 100 ms, from the VM's unix socket or through the control
 * plane's console WebSocket. Only whole lines count, so a line cut in two by
 * the transport is never misread.
 */
import { connect } from 'node:net';
import WebSocket from 'ws';
import type { TestServer } from './control-plane.js';
import { GUEST_READY_LINE } from './guest-image.js';

export class GuestConsole {
  #text = '';
  readonly #waiters = new Set<() => void>();
  #closed = false;

  private constructor(private readonly release: () => void) {}

  /** Connects to a VM's serial console socket (QEMU's `-serial unix:…,server=on`). */
  static unix(path: string): Promise<GuestConsole> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const console = new GuestConsole(() => socket.destroy());
      socket.on('data', (chunk: Buffer) => console.#receive(chunk.toString('latin1')));
      socket.on('close', () => console.#end());
      socket.on('error', (error) => {
        reject(error);
        console.#end();
      });
      socket.once('connect', () => resolve(console));
    });
  }

  /** Connects to a console WebSocket of the API (`/api/v1/consoles/{ticket}`). */
  static webSocket(url: string): Promise<GuestConsole> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      const console = new GuestConsole(() => socket.close());
      socket.on('message', (data: Buffer) => console.#receive(data.toString('latin1')));
      socket.on('close', () => console.#end());
      socket.on('error', (error) => {
        reject(error);
        console.#end();
      });
      socket.once('open', () => resolve(console));
    });
  }

  /** Connects to a VM's serial console through the API (a console ticket, then its WebSocket). */
  static async ofVm(s: TestServer, token: string, vmId: string): Promise<GuestConsole> {
    return GuestConsole.webSocket(await serialConsoleUrl(s, token, vmId));
  }

  /** Every tick number in a whole line, in the order received. */
  get ticks(): number[] {
    return this.numbers('tick');
  }

  /** The numbers of the whole lines `<word> N` (`tick`, `pattern`), in the order received. */
  numbers(word: string): number[] {
    const line = new RegExp(`^${word} (\\d+)$`);
    return this.#lines()
      .map((each) => line.exec(each)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number);
  }

  /** Whether the guest printed its boot line (a fresh boot) after the first `position` ticks. */
  bootedSince(position = 0): boolean {
    let ticks = 0;
    for (const line of this.#lines()) {
      if (line.startsWith('tick ')) ticks++;
      else if (line === GUEST_READY_LINE && ticks >= position) return true;
    }
    return false;
  }

  /**
   * Waits for a tick at position `from` or later (positions count ticks from
   * the first received) that satisfies `accept`; answers it.
   */
  waitForTick(
    accept: (tick: number) => boolean = () => true,
    from = 0,
    timeoutMs = 60_000,
  ): Promise<number> {
    return this.waitForNumber('tick', accept, from, timeoutMs);
  }

  /** Waits for a line `<word> N` at position `from` or later whose N satisfies `accept`; answers N. */
  async waitForNumber(
    word: string,
    accept: (n: number) => boolean,
    from = 0,
    timeoutMs = 60_000,
  ): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.numbers(word).slice(from).find(accept);
      if (found !== undefined) return found;
      if (this.#closed) throw new Error(`the console closed; last output: ${this.#tail()}`);
      if (Date.now() > deadline)
        throw new Error(
          `no such ${word} line within ${timeoutMs} ms; last output: ${this.#tail()}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.#waiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Runs `work` (a backup) while the guest writes its numbered pattern, once it has said it wrote
   * at least `atLeast` blocks. Answers the blocks it had said before `work` began, and the most it
   * can have written by a second after `work` ended (it says every 16th: 15 more than it said): a
   * copy of its disk made meanwhile holds between the two.
   */
  async patternAround<T>(
    atLeast: number,
    work: () => Promise<T>,
  ): Promise<{ before: number; after: number; result: T }> {
    const before = Math.max(
      await this.waitForNumber('pattern', (n) => n >= atLeast, 0, 120_000),
      ...this.numbers('pattern'),
    );
    const result = await work();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    return { before, after: Math.max(...this.numbers('pattern')) + 15, result };
  }

  close(): void {
    this.release();
    this.#end();
  }

  #lines(): string[] {
    // The last piece has no line end yet: not a whole line.
    return this.#text
      .split('\n')
      .slice(0, -1)
      .map((line) => line.replace(/\r$/, ''));
  }

  #tail(): string {
    return JSON.stringify(this.#text.slice(-300));
  }

  #receive(text: string): void {
    this.#text += text;
    this.#wake();
  }

  #end(): void {
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }
}

/** The WebSocket URL of a ticket to the VM's serial console. */
async function serialConsoleUrl(s: TestServer, token: string, vmId: string): Promise<string> {
  const issued = await s.request('POST', `/vms/${vmId}/console-tickets`, {
    token,
    body: { kind: 'serial' },
  });
  const path = (issued.body as { path?: string } | undefined)?.path;
  if (issued.status !== 201 || !path)
    throw new Error(`no console ticket: ${issued.status} ${JSON.stringify(issued.body)}`);
  return `${s.baseUrl.replace('http', 'ws')}${path}`;
}

/** Answers the numbers of the first `count` `tick N` lines seen on the VM's console. */
export async function consoleTicks(
  s: TestServer,
  token: string,
  vmId: string,
  count: number,
  timeoutMs = 30_000,
): Promise<number[]> {
  return (await consoleRead(s, token, vmId, count, timeoutMs)).ticks;
}

/**
 * Reads the VM's console through the API until `count` `tick N` lines were seen; answers their
 * numbers and the whole text received (for failure messages: a guest that restarted shows why).
 */
export async function consoleRead(
  s: TestServer,
  token: string,
  vmId: string,
  count: number,
  timeoutMs = 30_000,
): Promise<{ ticks: number[]; text: string }> {
  const url = await serialConsoleUrl(s, token, vmId);
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = new WebSocket(url);
    const timer = setTimeout(() => {
      socket.close();
      reject(
        new Error(
          `fewer than ${count} ticks on the console within ${timeoutMs} ms: ${text.slice(-300)}`,
        ),
      );
    }, timeoutMs);
    socket.on('message', (data: Buffer) => {
      text += data.toString();
      const seen = [...text.matchAll(/tick (\d+)\r?\n/g)].map((m) => Number(m[1]));
      if (seen.length >= count) {
        clearTimeout(timer);
        socket.close();
        resolve({ ticks: seen.slice(0, count), text });
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
