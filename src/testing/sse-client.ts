/**
 * An open Server-Sent Events stream as a test reads it: every message kept in order (with its
 * event name), a wait for one that matches, and whether the server ended the stream.
 */
export interface SseMessage {
  id: string | null;
  event: string;
  // Read by tests field by field.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data: any;
}

export class SseStream {
  readonly messages: SseMessage[] = [];
  #ended = false;
  #failure: string | undefined;
  readonly #waiters = new Set<() => void>();
  readonly #abort: AbortController;
  /** Resolves when the server has ended the stream (or the test aborted it). */
  readonly ended: Promise<void>;

  private constructor(body: ReadableStream<Uint8Array>, abort: AbortController) {
    this.#abort = abort;
    this.ended = this.#read(body);
  }

  /** Opens the stream; answers once the response's headers have arrived (status 200). */
  static async open(url: string, headers: Record<string, string>): Promise<SseStream> {
    const abort = new AbortController();
    const response = await fetch(url, { headers, signal: abort.signal });
    if (response.status !== 200 || !response.body)
      throw new Error(`the stream answered ${response.status}: ${await response.text()}`);
    return new SseStream(response.body, abort);
  }

  get isEnded(): boolean {
    return this.#ended;
  }

  /** The first message (from the start) that matches; fails after `timeoutMs` or when the stream ends first. */
  async waitFor(
    what: string,
    matches: (message: SseMessage) => boolean,
    timeoutMs = 15_000,
  ): Promise<SseMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(matches);
      if (found) return found;
      if (this.#ended) throw new Error(`the stream ended before ${what}: ${this.#describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}: ${this.#describe()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        const wake = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        this.#waiters.add(wake);
      });
    }
  }

  /** Waits (up to `timeoutMs`) for the server to end the stream. */
  async waitForEnd(timeoutMs = 15_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the stream did not end: ${this.#describe()}`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.ended, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#abort.abort();
  }

  #describe(): string {
    const seen = JSON.stringify(
      this.messages.map((m): unknown[] => {
        const data = m.data as { objectId?: unknown } | null;
        return [m.event, data?.objectId ?? data];
      }),
    );
    return this.#failure ? `${seen} (read failed: ${this.#failure})` : seen;
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message: SseMessage = { id: null, event: 'message', data: undefined };
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) message.id = line.slice(4);
            else if (line.startsWith('event: ')) message.event = line.slice(7);
            else if (line.startsWith('data: ')) message.data = JSON.parse(line.slice(6)) as unknown;
          }
          if (message.data !== undefined) this.messages.push(message);
        }
        for (const wake of [...this.#waiters]) wake();
      }
    } catch (error) {
      // Kept, not thrown: nobody may be waiting on `ended`, and a drop shows as the end.
      if ((error as Error).name !== 'AbortError') this.#failure = (error as Error).message;
    } finally {
      this.#ended = true;
      for (const wake of [...this.#waiters]) wake();
    }
  }
}
