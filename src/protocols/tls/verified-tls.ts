/**
 * TLS to a management endpoint (vCenter, ESXi, a BMC) verified the way an
 * operator configures it: by the system's CAs, by a configured CA, or by a
 * pinned certificate thumbprint (SHA-256, or SHA-1 as older vSphere shows
 * them). The certificate is checked before a single byte of a request
 * (credentials included) is sent; a rejection carries the thumbprint the peer
 * presented, so the operator can compare and pin it.
 */
import { createHash } from 'node:crypto';
import type { Agent } from 'node:http';
import type { Socket } from 'node:net';
import {
  checkServerIdentity,
  connect as tlsConnect,
  type ConnectionOptions,
  type PeerCertificate,
} from 'node:tls';
import { ZenithError, type ErrorCode } from '../../core/errors.js';

export interface TlsOptions {
  /** PEM certificates to trust instead of the system's CAs. */
  ca?: string;
  /** SHA-256 (or SHA-1) thumbprint of the one certificate to trust, hex with or without colons. */
  thumbprint?: string;
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

export interface VerifiedTlsOptions {
  host: string;
  port: number;
  tls: TlsOptions;
  /** The code of a certificate the options do not trust (each protocol has its own). */
  rejectedCode: ErrorCode;
  /** Turns a socket or handshake error into the protocol's connect error. */
  connectError: (error: Error) => ZenithError;
}

/**
 * Makes `agent` open its connections through verified TLS: the callback form
 * of createConnection hands a socket to HTTP only once its certificate passed.
 * Throws ZEN_CONFIG_INVALID when the pin is not a thumbprint.
 */
export function verifyAgentConnections(agent: Agent, options: VerifiedTlsOptions): void {
  const { tls, host, port } = options;
  const pin = tls.thumbprint ? normalizeThumbprint(tls.thumbprint) : undefined;
  if (tls.thumbprint && !pin)
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      'the thumbprint must be a SHA-256 or SHA-1 hex digest',
      {
        key: 'thumbprint',
      },
    );
  (agent as unknown as { createConnection: unknown }).createConnection = (
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
    const onError = (error: Error) => callback(options.connectError(error));
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
        options.rejectedCode,
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

function verifyPeer(
  authorized: boolean,
  authorizationError: Error | null,
  cert: PeerCertificate,
  host: string,
  pin: string | undefined,
  code: ErrorCode,
): ZenithError | undefined {
  const raw = cert.raw as Buffer | undefined;
  if (!raw) return new ZenithError(code, `${host} presented no certificate`, { host });
  const seen = { thumbprint: thumbprintOf(raw), thumbprintSha1: thumbprintOf(raw, 'sha1') };
  if (pin) {
    if (pin === seen.thumbprint || pin === seen.thumbprintSha1) return undefined;
    return new ZenithError(
      code,
      `the certificate of ${host} does not match the pinned thumbprint`,
      {
        host,
        ...seen,
      },
    );
  }
  if (!authorized)
    return new ZenithError(
      code,
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
    return new ZenithError(code, `the certificate is not for ${host}: ${mismatch.message}`, {
      host,
      ...seen,
    });
  return undefined;
}

function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}
