/** The CLI's view of the API: one small HTTP client that turns error bodies back into coded errors. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { errorFromBody, ZenithError } from '../api/errors.js';
import { streamClosedEvent } from '../api/event-guards.js';
import type { ZenithEvent } from '../api/events.js';

export interface CliConfig {
  server: string;
  token?: string | undefined;
  user?: string | undefined;
}

export const defaultServer = 'http://127.0.0.1:7443';

export function configPath(): string {
  return (
    process.env.ZENITH_CONFIG ??
    join(process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'zenith', 'cli.json')
  );
}

export function readConfig(): CliConfig {
  const path = configPath();
  const stored = existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as Partial<CliConfig>)
    : {};
  return {
    server: process.env.ZENITH_SERVER ?? stored.server ?? defaultServer,
    token: process.env.ZENITH_TOKEN ?? stored.token,
    user: stored.user,
  };
}

export function writeConfig(config: CliConfig): void {
  const path = configPath();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}

export class ApiClient {
  constructor(
    readonly server: string,
    private readonly token: string | undefined,
  ) {}

  static fromConfig(overrides: { server?: string | undefined } = {}): ApiClient {
    const config = readConfig();
    return new ApiClient(overrides.server ?? config.server, config.token);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.server}/api/v1${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      throw new ZenithError(
        'ZEN_CONNECTION_FAILED',
        `cannot reach the Zenith server at ${this.server} (${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}); is it running? Set the address with --server or ZENITH_SERVER`,
      );
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (!response.ok) throw errorFromBody(parsed, `HTTP ${response.status}`);
    return parsed as T;
  }

  /** A non-JSON answer (CSV), as text; errors still arrive as coded JSON. */
  async getText(path: string): Promise<string> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const response = await fetch(`${this.server}/api/v1${path}`, { headers }).catch(
      (error: unknown) => {
        throw new ZenithError(
          'ZEN_CONNECTION_FAILED',
          `cannot reach the Zenith server at ${this.server} (${(error as Error).message})`,
        );
      },
    );
    const text = await response.text();
    if (!response.ok) throw errorFromBody(JSON.parse(text || 'null'), `HTTP ${response.status}`);
    return text;
  }

  /** A POST answered with bytes (a download): its length, file name and body; errors arrive as coded JSON. */
  async download(path: string): Promise<{
    sizeBytes: number | null;
    fileName: string | null;
    body: ReadableStream<Uint8Array>;
  }> {
    const headers: Record<string, string> = {
      accept: 'application/octet-stream, application/json',
    };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const response = await fetch(`${this.server}/api/v1${path}`, { method: 'POST', headers }).catch(
      (error: unknown) => {
        throw new ZenithError(
          'ZEN_CONNECTION_FAILED',
          `cannot reach the Zenith server at ${this.server} (${(error as Error).message})`,
        );
      },
    );
    if (!response.ok || !response.body)
      throw errorFromBody(await response.json().catch(() => undefined), `HTTP ${response.status}`);
    const length = response.headers.get('content-length');
    return {
      sizeBytes: length === null ? null : Number(length),
      fileName:
        /filename="([^"]+)"/.exec(response.headers.get('content-disposition') ?? '')?.[1] ?? null,
      body: response.body,
    };
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  /** GET /events/stream as an async iterable of its events, typed by the contract (src/api/events.ts). */
  async *stream(path: string, signal?: AbortSignal): AsyncIterable<ZenithEvent> {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const response = await fetch(`${this.server}/api/v1${path}`, {
      headers,
      ...(signal ? { signal } : {}),
    });
    if (!response.ok || !response.body)
      throw errorFromBody(await response.json().catch(() => undefined), `HTTP ${response.status}`);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields: Record<string, string> = {};
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
        }
        // The server ended the stream for good (revoked, disabled, no access): its reason is an error body.
        if (fields.event === streamClosedEvent && fields.data !== undefined)
          throw errorFromBody(JSON.parse(fields.data), 'the event stream was closed');
        // Every other message's data is one event of the union, as the server declares it.
        if (fields.data !== undefined) yield JSON.parse(fields.data) as ZenithEvent;
      }
    }
  }
}
