/**
 * The live event stream (GET /events/stream) for the whole app. EventSource cannot send the
 * bearer token, so this reads the stream with fetch and resumes after a drop with Last-Event-ID,
 * so no event is missed between connections.
 */
import { ApiError } from './api-error.ts';
import { apiBase, type ApiClient } from './client.ts';
import { SseParser } from './sse-parser.ts';
import type { ZenithEvent } from './types.ts';

export type EventListener = (event: ZenithEvent) => void;
export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'closed';

export class EventStream {
  #listeners = new Set<EventListener>();
  #stateListeners = new Set<(state: StreamState) => void>();
  #abort = new AbortController();
  #lastId: string | null = null;
  state: StreamState = 'connecting';

  constructor(
    private readonly client: ApiClient,
    /** Waits before reconnecting; injected so a caller may choose its own back-off. */
    private readonly pause: (attempt: number) => Promise<void> = (attempt) =>
      new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 10_000))),
  ) {
    void this.#run();
  }

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Calls `react` once, `delayMs` after the first event that `relevant` keeps, however many more
   * arrive meanwhile: a burst of events is one reload. The answer unsubscribes and cancels a call
   * not made yet.
   */
  subscribeCoalesced(
    relevant: (event: ZenithEvent) => boolean,
    react: () => void,
    delayMs = 300,
  ): () => void {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const unsubscribe = this.subscribe((event) => {
      if (!relevant(event)) return;
      timer ??= setTimeout(() => {
        timer = null;
        react();
      }, delayMs);
    });
    return () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
    };
  }

  onState(listener: (state: StreamState) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  close(): void {
    this.#abort.abort();
    this.#setState('closed');
  }

  #setState(state: StreamState): void {
    this.state = state;
    for (const listener of this.#stateListeners) listener(state);
  }

  async #run(): Promise<void> {
    let attempt = 0;
    while (!this.#abort.signal.aborted) {
      try {
        await this.#readOnce();
        attempt = 0;
      } catch {
        if (this.#abort.signal.aborted) return;
        attempt += 1;
      }
      if (this.#abort.signal.aborted) return;
      this.#setState('reconnecting');
      await this.pause(attempt);
    }
  }

  async #readOnce(): Promise<void> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.client.token}` };
    if (this.#lastId) headers['last-event-id'] = this.#lastId;
    const response = await fetch(`${apiBase}/events/stream`, {
      headers,
      signal: this.#abort.signal,
    });
    if (response.status === 401) {
      // The session ended: one ordinary call lets the client's 401 handling take over.
      await this.client.call('GET', '/auth/me').catch(() => undefined);
      this.close();
      return;
    }
    if (!response.ok || !response.body) throw new Error(`event stream: HTTP ${response.status}`);
    this.#setState('live');
    const parser = new SseParser();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const message of parser.push(value)) {
        if (message.event === 'stream.closed') {
          // The server ended the stream for good: reconnecting cannot help. A session that ended
          // (revoked, its user disabled) ends here as a 401 would; with no access to events any
          // more (ZEN_FORBIDDEN) the console just stops following them.
          const { error } = JSON.parse(message.data) as {
            error: { code: string; message: string };
          };
          this.close();
          if (error.code !== 'ZEN_FORBIDDEN')
            this.client.sessionEnded(new ApiError(401, error.code, error.message));
          return;
        }
        if (message.id) this.#lastId = message.id;
        const event = JSON.parse(message.data) as ZenithEvent;
        for (const listener of this.#listeners) listener(event);
      }
    }
  }
}
