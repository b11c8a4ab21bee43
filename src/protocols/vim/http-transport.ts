/**
 * The HTTP(S) transport of the VIM client: one POST per call on kept-alive
 * connections, the reply parsed while it streams in. TLS is verified by
 * default (system CAs, or the configured CA); a thumbprint pin trusts exactly
 * one certificate instead. The certificate is checked before a single byte of
 * a request (credentials included) is sent.
 */
import { createHash } from 'node:crypto';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import {
  checkServerIdentity,
  connect as tlsConnect,
  type ConnectionOptions,
  type PeerCertificate,
} from 'node:tls';
import { ZenithError } from '../../core/errors.js';
import { XmlTreeBuilder, type XmlElement, type XmlEmit } from './xml-tree.js';

export interface TlsOptions {
  /** PEM certificates to trust instead of the system's CAs. */
  ca?: string;
  /** SHA-256 (or SHA-1) thumbprint of the one certificate to trust, hex with or without colons. */
  thumbprint?: string;
}

export interface TransportOptions {
  /** The SDK endpoint, e.g. https://vcenter.example.com/sdk */
  url: string;
  tls?: TlsOptions;
  /** Per call: the reply must be complete within this time. */
  timeoutMs?: number;
  /** Replies larger than this fail with VIM_PROTOCOL_ERROR. */
  maxReplyBytes?: number;
  userAgent?: string;
}

export interface TransportReply {
  status: number;
  setCookie: string[];
  root: XmlElement;
  bytes: number;
}

export interface SoapTransport {
  /** `emit`: elements to hand over as they arrive (a transport may also leave them in the tree). */
  post(
    body: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
    emit?: XmlEmit,
  ): Promise<TransportReply>;
  close(): void;
}

/** Normalises a thumbprint to upper-case hex pairs joined by colons. */
export function normalizeThumbprint(text: string): string | undefined {
  const hex = text.replaceAll(':', '').replaceAll(' ', '').toUpperCase();
  if (!/^[0-9A-F]+$/.test(hex) || (hex.length !== 40 && hex.length !== 64)) return undefined;
  return hex.match(/../g)!.join(':');
}

export function thumbprintOf(der: Buffer, algorithm: 'sha256' | 'sha1' = 'sha256'): string {
  return normalizeThumbprint(createHash(algorithm).update(der).digest('hex'))!;
}

export class HttpTransport implements SoapTransport {
  readonly #url: URL;
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  readonly #maxReplyBytes: number;
  readonly #userAgent: string;

  constructor(options: TransportOptions) {
    this.#url = new URL(options.url);
    if (this.#url.protocol !== 'https:' && this.#url.protocol !== 'http:')
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        `the vSphere URL must be https (got ${this.#url.protocol})`,
      );
    this.#timeoutMs = options.timeoutMs ?? 120_000;
    this.#maxReplyBytes = options.maxReplyBytes ?? 1024 * 1024 * 1024;
    this.#userAgent = options.userAgent ?? 'zenith-vim/1';
    this.#agent = new Agent({ keepAlive: true, maxSockets: 8 });
    if (this.#url.protocol === 'https:') {
      const tls = options.tls ?? {};
      const pin = tls.thumbprint ? normalizeThumbprint(tls.thumbprint) : undefined;
      if (tls.thumbprint && !pin)
        throw new ZenithError(
          'ZEN_CONFIG_INVALID',
          'the thumbprint must be a SHA-256 or SHA-1 hex digest',
          {
            key: 'thumbprint',
          },
        );
      const host = this.#url.hostname.replace(/^\[|\]$/g, '');
      const port = Number(this.#url.port || 443);
      // The callback form of createConnection: the socket is handed to HTTP only once its certificate passed.
      (this.#agent as unknown as { createConnection: unknown }).createConnection = (
        _options: unknown,
        callback: (error: Error | null, socket?: Socket) => void,
      ) => {
        const connectOptions: ConnectionOptions = {
          host,
          port,
          rejectUnauthorized: false,
          ...(isIp(host) ? {} : { servername: host }),
          ...(tls.ca ? { ca: tls.ca } : {}),
        };
        const socket = tlsConnect(connectOptions);
        const onError = (error: Error) => callback(connectError(this.#url, error));
        socket.once('error', onError);
        socket.once('secureConnect', () => {
          socket.off('error', onError);
          const cert = socket.getPeerCertificate();
          const rejection = verifyPeer(
            socket.authorized,
            socket.authorizationError,
            cert,
            host,
            pin,
          );
          if (rejection) {
            socket.destroy();
            callback(rejection);
            return;
          }
          callback(null, socket);
        });
        return undefined;
      };
    }
  }

  post(
    body: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
    emit?: XmlEmit,
  ): Promise<TransportReply> {
    const payload = Buffer.from(body, 'utf8');
    return new Promise<TransportReply>((resolve, reject) => {
      let settled = false;
      const fail = (error: ZenithError) => {
        if (settled) return;
        settled = true;
        cleanUp();
        request.destroy();
        reject(error);
      };
      const timer = setTimeout(
        () =>
          fail(
            new ZenithError(
              'VIM_TIMEOUT',
              `no complete reply from ${this.#url.host} within ${this.#timeoutMs} ms`,
              { timeoutMs: this.#timeoutMs },
            ),
          ),
        this.#timeoutMs,
      );
      const onAbort = () =>
        fail(
          new ZenithError('VIM_CLOSED', 'the call was cancelled', {
            reason: String(signal?.reason),
          }),
        );
      const cleanUp = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const request = httpRequest(
        {
          agent: this.#agent,
          protocol: 'http:',
          host: this.#url.hostname,
          port: this.#url.port || (this.#url.protocol === 'https:' ? 443 : 80),
          path: this.#url.pathname + this.#url.search,
          method: 'POST',
          headers: {
            'content-type': 'text/xml; charset=utf-8',
            'content-length': String(payload.length),
            'user-agent': this.#userAgent,
            ...headers,
          },
        },
        (response) =>
          this.#read(
            response,
            (reply) => {
              if (settled) return;
              settled = true;
              cleanUp();
              resolve(reply);
            },
            fail,
            emit,
          ),
      );
      request.on('error', (error) =>
        fail(error instanceof ZenithError ? error : connectError(this.#url, error)),
      );
      request.end(payload);
    });
  }

  #read(
    response: IncomingMessage,
    done: (reply: TransportReply) => void,
    fail: (error: ZenithError) => void,
    emit: XmlEmit | undefined,
  ): void {
    const status = response.statusCode ?? 0;
    const type = String(response.headers['content-type'] ?? '');
    if (status !== 200 && !(status === 500 && type.includes('xml'))) {
      response.resume();
      fail(
        new ZenithError(
          'VIM_CONNECT_FAILED',
          `${this.#url.host} answered HTTP ${status} ${response.statusMessage ?? ''}`.trim(),
          {
            url: this.#url.href,
            status,
          },
        ),
      );
      return;
    }
    const builder = new XmlTreeBuilder(emit ? { emit } : {});
    let bytes = 0;
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      bytes += Buffer.byteLength(chunk);
      if (bytes > this.#maxReplyBytes) {
        fail(
          new ZenithError(
            'VIM_PROTOCOL_ERROR',
            `the reply is larger than ${this.#maxReplyBytes} bytes`,
            { maxReplyBytes: this.#maxReplyBytes },
          ),
        );
        return;
      }
      builder.write(chunk);
    });
    response.on('error', (error) => fail(connectError(this.#url, error)));
    response.on('aborted', () =>
      fail(new ZenithError('VIM_PROTOCOL_ERROR', 'the reply was cut off', { bytes })),
    );
    response.on('end', () => {
      if (!response.complete) {
        fail(new ZenithError('VIM_PROTOCOL_ERROR', 'the reply was cut off', { bytes }));
        return;
      }
      try {
        const root = builder.end();
        const cookies = response.headers['set-cookie'] ?? [];
        done({ status, setCookie: cookies, root, bytes });
      } catch (error) {
        fail(
          error instanceof ZenithError
            ? error
            : new ZenithError('VIM_PROTOCOL_ERROR', String(error)),
        );
      }
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

function verifyPeer(
  authorized: boolean,
  authorizationError: Error | null,
  cert: PeerCertificate,
  host: string,
  pin: string | undefined,
): ZenithError | undefined {
  const raw = cert.raw as Buffer | undefined;
  if (!raw)
    return new ZenithError('VIM_CERTIFICATE_REJECTED', `${host} presented no certificate`, {
      host,
    });
  const seen = { thumbprint: thumbprintOf(raw), thumbprintSha1: thumbprintOf(raw, 'sha1') };
  if (pin) {
    if (pin === seen.thumbprint || pin === seen.thumbprintSha1) return undefined;
    return new ZenithError(
      'VIM_CERTIFICATE_REJECTED',
      `the certificate of ${host} does not match the pinned thumbprint`,
      { host, ...seen },
    );
  }
  if (!authorized)
    return new ZenithError(
      'VIM_CERTIFICATE_REJECTED',
      `the certificate of ${host} is not trusted (${String(authorizationError?.message ?? authorizationError)}); configure its CA or pin its thumbprint`,
      {
        host,
        reason: String(
          (authorizationError as { code?: string } | null)?.code ?? authorizationError,
        ),
        ...seen,
      },
    );
  const mismatch = checkServerIdentity(host, cert);
  if (mismatch)
    return new ZenithError(
      'VIM_CERTIFICATE_REJECTED',
      `the certificate is not for ${host}: ${mismatch.message}`,
      { host, ...seen },
    );
  return undefined;
}

function connectError(url: URL, error: Error): ZenithError {
  const code = (error as NodeJS.ErrnoException).code;
  return new ZenithError(
    'VIM_CONNECT_FAILED',
    `cannot reach ${url.host}: ${code ?? error.message}`,
    {
      url: url.href,
      reason: code ?? error.message,
    },
    { cause: error },
  );
}

function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}
