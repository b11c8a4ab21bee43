/**
 * The HTTP(S) transport of the VIM client: one POST per call on kept-alive
 * connections, the reply parsed while it streams in. TLS is verified by
 * default (system CAs, or the configured CA); a thumbprint pin trusts exactly
 * one certificate instead (../tls/verified-tls.ts, shared with the Redfish
 * client). The certificate is checked before a single byte of a request
 * (credentials included) is sent.
 */
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { ZenithError } from '../../core/errors.js';
import { verifyAgentConnections, type TlsOptions } from '../tls/verified-tls.js';
import { XmlTreeBuilder, type XmlElement, type XmlEmit } from './xml-tree.js';

export type { TlsOptions } from '../tls/verified-tls.js';

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
    if (this.#url.protocol === 'https:')
      verifyAgentConnections(this.#agent, {
        host: this.#url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(this.#url.port || 443),
        tls: options.tls ?? {},
        rejectedCode: 'VIM_CERTIFICATE_REJECTED',
        connectError: (error) => connectError(this.#url, error),
      });
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
