/**
 * The HTTPS transport of the Redfish client: one JSON request per call on
 * kept-alive connections, each under a deadline that covers connecting, the
 * TLS handshake and the whole reply. TLS is verified as for vSphere (system
 * or configured CA, or a pinned thumbprint: ../tls/verified-tls.ts) before a
 * byte of a request, credentials included, is sent. Every failure is a
 * ZenithError with a REDFISH_ code; nothing here logs (a request may carry a
 * password or a session token).
 */
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { ZenithError } from '../../core/errors.js';
import { verifyAgentConnections, type TlsOptions } from '../tls/verified-tls.js';

export type { TlsOptions } from '../tls/verified-tls.js';

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export interface RedfishReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON body; undefined when the reply had none (204, or an empty body). */
  body: unknown;
}

export interface RedfishTransport {
  request(
    method: HttpMethod,
    path: string,
    options?: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal },
  ): Promise<RedfishReply>;
  close(): void;
}

export interface HttpsTransportOptions {
  /** The BMC's base URL, e.g. https://10.0.0.5 or https://bmc.example.com:8443 */
  url: string;
  tls?: TlsOptions;
  /** Per request: the reply must be complete within this time. */
  timeoutMs?: number;
  /** Replies larger than this fail with REDFISH_PROTOCOL_ERROR. */
  maxReplyBytes?: number;
}

export class HttpsTransport implements RedfishTransport {
  readonly #url: URL;
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  readonly #maxReplyBytes: number;
  #closed = false;

  constructor(options: HttpsTransportOptions) {
    this.#url = new URL(options.url);
    if (this.#url.protocol !== 'https:')
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        `the BMC URL must be https (got ${this.#url.protocol})`,
        { key: 'url' },
      );
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxReplyBytes = options.maxReplyBytes ?? 16 * 1024 * 1024;
    this.#agent = new Agent({ keepAlive: true, maxSockets: 4 });
    verifyAgentConnections(this.#agent, {
      host: this.#url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(this.#url.port || 443),
      tls: options.tls ?? {},
      rejectedCode: 'REDFISH_CERTIFICATE_REJECTED',
      connectError: (error) => connectError(this.#url, error),
    });
  }

  get host(): string {
    return this.#url.host;
  }

  request(
    method: HttpMethod,
    path: string,
    options: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<RedfishReply> {
    if (this.#closed)
      return Promise.reject(new ZenithError('REDFISH_CLOSED', 'the Redfish client is closed'));
    const payload =
      options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body), 'utf8');
    const { signal } = options;
    return new Promise<RedfishReply>((resolve, reject) => {
      let settled = false;
      const settle = (error: ZenithError | undefined, reply?: RedfishReply) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (error) {
          request.destroy();
          reject(error);
        } else resolve(reply!);
      };
      const timer = setTimeout(
        () =>
          settle(
            new ZenithError(
              'REDFISH_TIMEOUT',
              `${method} ${path}: no complete reply from ${this.#url.host} within ${this.#timeoutMs} ms`,
              { host: this.#url.host, path, timeoutMs: this.#timeoutMs },
            ),
          ),
        this.#timeoutMs,
      );
      const onAbort = () =>
        settle(
          new ZenithError('REDFISH_CLOSED', `${method} ${path} was cancelled`, {
            reason: String(signal?.reason),
          }),
        );
      const request = httpRequest({
        agent: this.#agent,
        protocol: 'http:',
        host: this.#url.hostname,
        port: this.#url.port || 443,
        path,
        method,
        headers: {
          accept: 'application/json',
          'odata-version': '4.0',
          ...(payload
            ? { 'content-type': 'application/json', 'content-length': String(payload.length) }
            : {}),
          ...options.headers,
        },
      });
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      let responded = false;
      request.on('response', (response) => {
        responded = true;
        this.#read(method, path, response, (error, reply) => settle(error, reply));
      });
      request.on('error', (error) =>
        settle(
          error instanceof ZenithError
            ? error
            : responded
              ? cutOff(this.#url, method, path, error)
              : connectError(this.#url, error),
        ),
      );
      request.end(payload);
    });
  }

  #read(
    method: HttpMethod,
    path: string,
    response: IncomingMessage,
    done: (error: ZenithError | undefined, reply?: RedfishReply) => void,
  ): void {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const malformed = (why: string) =>
      new ZenithError('REDFISH_PROTOCOL_ERROR', `${method} ${path}: ${why}`, {
        host: this.#url.host,
        path,
        status: response.statusCode,
        bytes,
      });
    response.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > this.#maxReplyBytes) {
        done(malformed(`the reply is larger than ${this.#maxReplyBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    // The connection dropping once a reply has begun is a reply cut off, not an unreachable BMC.
    response.on('error', () => done(malformed('the reply was cut off')));
    response.on('aborted', () => done(malformed('the reply was cut off')));
    response.on('end', () => {
      if (!response.complete) return done(malformed('the reply was cut off'));
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      if (text.trim() !== '') {
        try {
          body = JSON.parse(text);
        } catch {
          // An error page in HTML is an HTTP failure first; a 2xx that is not JSON is a broken BMC.
          if ((response.statusCode ?? 0) < 400) return done(malformed('the reply is not JSON'));
        }
      }
      done(undefined, { status: response.statusCode ?? 0, headers: response.headers, body });
    });
  }

  close(): void {
    this.#closed = true;
    this.#agent.destroy();
  }
}

function cutOff(url: URL, method: HttpMethod, path: string, error: Error): ZenithError {
  return new ZenithError(
    'REDFISH_PROTOCOL_ERROR',
    `${method} ${path}: the reply was cut off`,
    { host: url.host, path, reason: (error as NodeJS.ErrnoException).code ?? error.message },
    { cause: error },
  );
}

function connectError(url: URL, error: Error): ZenithError {
  const code = (error as NodeJS.ErrnoException).code;
  return new ZenithError(
    'REDFISH_CONNECT_FAILED',
    `cannot reach ${url.host}: ${code ?? error.message}`,
    { host: url.host, reason: code ?? error.message },
    { cause: error },
  );
}
