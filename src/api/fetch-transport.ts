/** A transport over fetch: JSON in and out, a bearer token, coded errors from error answers. */
import type { ByteAnswer, Transport } from './client.js';
import { errorFromBody, ZenithError } from './errors.js';

export interface FetchTransportOptions {
  /** Where the API is: the server's address followed by /api/v1. */
  baseUrl: string;
  token?: string | undefined;
  /** What to throw when the server cannot be reached (default: ZEN_CONNECTION_FAILED). */
  unreachable?: (error: unknown) => Error;
}

export function fetchTransport(options: FetchTransportOptions): Transport {
  return async ({ method, path, body, expect = 'json', signal }) => {
    const headers: Record<string, string> = {
      accept:
        expect === 'text'
          ? 'text/csv'
          : expect === 'bytes'
            ? 'application/octet-stream, application/json'
            : 'application/json',
    };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${options.baseUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      throw (
        options.unreachable?.(error) ??
        new ZenithError('ZEN_CONNECTION_FAILED', `cannot reach ${options.baseUrl}`, {
          cause: (error as Error).message,
        })
      );
    }
    if (response.status === 204) return undefined;
    if (expect === 'bytes' && response.ok && response.body) {
      const length = response.headers.get('content-length');
      const disposition = /filename="([^"]+)"/.exec(
        response.headers.get('content-disposition') ?? '',
      );
      return {
        sizeBytes: length === null ? null : Number(length),
        fileName: disposition?.[1] ?? null,
        body: response.body,
      } satisfies ByteAnswer;
    }
    const text = await response.text();
    if (!response.ok) {
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      throw errorFromBody(parsed, `HTTP ${response.status}`);
    }
    if (expect === 'text') return text;
    return text ? (JSON.parse(text) as unknown) : undefined;
  };
}
