/**
 * How a request appears in the log: Fastify logs every request with its URL, and some URLs carry a
 * credential (a console or download ticket is the last segment of /consoles/… or /downloads/…; a query
 * string may name a token).
 * Those are replaced before anything is written.
 */
import type { FastifyRequest } from 'fastify';

const redacted = '[redacted]';
/** Query parameters whose values are credentials, by name (as for audit parameters). */
const secretParameter = /ticket|token|pass(word)?|secret|credential|key|signature/i;

/** The URL with its credentials replaced. */
export function loggedUrl(url: string): string {
  const at = url.indexOf('?');
  const path = (at < 0 ? url : url.slice(0, at)).replace(
    /(\/(?:consoles|downloads)\/)[^/]+/,
    (_match, prefix: string) => `${prefix}${redacted}`,
  );
  if (at < 0) return path;
  const query = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      return eq >= 0 && secretParameter.test(safeDecode(name)) ? `${name}=${redacted}` : pair;
    })
    .join('&');
  return `${path}?${query}`;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The `req` serializer of the HTTP logger (Fastify's fields, the URL redacted). */
export function serializeRequest(request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: loggedUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}
