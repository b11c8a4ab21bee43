/**
 * Opening a libvirt connection from a connection's settings: the transport the
 * URI names (unix socket, TCP, TLS with client certificates whose key may be
 * the connection's stored secret), the handshake, and errors a user can act
 * on: unreachable → ZEN_CONNECTION_FAILED, refused credentials →
 * ZEN_CONNECTION_AUTH_FAILED, each with the protocol's own code in details.
 */
import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { LibvirtClient } from '../../protocols/libvirt/libvirt-client.js';
import { VIR_ERR, libvirtErrorCode } from '../../protocols/libvirt/remote-error.js';
import {
  connectTcp,
  connectTls,
  connectUnixSocket,
  loadLibvirtPki,
  type TlsCredentials,
} from '../../protocols/libvirt/transports.js';
import type { LibvirtSettings } from './libvirt-settings.js';
import { parseLibvirtUri, type LibvirtUri } from './libvirt-uri.js';

/** libvirt's default client PKI layout for root (used when neither files nor pkipath are given). */
const DEFAULT_PKI = {
  ca: '/etc/pki/CA/cacert.pem',
  cert: '/etc/pki/libvirt/clientcert.pem',
  key: '/etc/pki/libvirt/private/clientkey.pem',
};

/** Node's codes for a TLS peer that could not be verified or refused us. */
const TLS_TRUST_FAILURE =
  /^(ERR_SSL_|ERR_TLS_CERT|CERT_|UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED_CERT)/;

export interface OpenOptions {
  settings: LibvirtSettings;
  /** The connection's secret: for TLS, the client's private key (PEM). */
  secret: string | null;
  clock: Clock;
  connectTimeoutMs?: number;
}

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      `cannot read the TLS ${what} at ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      { path },
    );
  }
}

async function tlsCredentials(
  uri: LibvirtUri,
  settings: LibvirtSettings,
  secret: string | null,
): Promise<TlsCredentials> {
  const keyFromSecret =
    secret !== null && secret.includes('-----BEGIN') ? Buffer.from(secret) : undefined;
  if (secret !== null && !keyFromSecret)
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      "the secret of a libvirt TLS connection is the client's private key in PEM form",
    );
  if (uri.pkiPath && !settings.tlsCaFile && !settings.tlsCertFile && !settings.tlsKeyFile) {
    const pki = await loadLibvirtPki(uri.pkiPath).catch((error: unknown) => {
      throw new ZenithError('ZEN_CONFIG_INVALID', (error as Error).message, {
        pkiPath: uri.pkiPath,
      });
    });
    return keyFromSecret ? { ...pki, key: keyFromSecret } : pki;
  }
  return {
    ca: await readPem(settings.tlsCaFile ?? DEFAULT_PKI.ca, 'CA certificate'),
    cert: await readPem(settings.tlsCertFile ?? DEFAULT_PKI.cert, 'client certificate'),
    key: keyFromSecret ?? (await readPem(settings.tlsKeyFile ?? DEFAULT_PKI.key, 'client key')),
  };
}

async function openTransport(
  uri: LibvirtUri,
  options: OpenOptions,
): Promise<() => Promise<Duplex>> {
  const timeouts = { connectTimeoutMs: options.connectTimeoutMs ?? 10_000 };
  switch (uri.transport) {
    case 'unix':
      if (options.secret !== null)
        throw new ZenithError(
          'ZEN_CONFIG_INVALID',
          'a libvirt connection over the local unix socket takes no secret',
        );
      return () => connectUnixSocket(uri.socket!, timeouts);
    case 'tcp':
      if (options.secret !== null)
        throw new ZenithError(
          'ZEN_CONFIG_INVALID',
          'a libvirt connection over plain TCP takes no secret (SASL is not implemented; use tls)',
        );
      return () => connectTcp(uri.host!, uri.port!, timeouts);
    case 'tls': {
      const credentials = await tlsCredentials(uri, options.settings, options.secret);
      return () =>
        connectTls({
          host: uri.host!,
          port: uri.port!,
          credentials,
          ...(options.settings.tlsServerName ? { servername: options.settings.tlsServerName } : {}),
          ...timeouts,
        });
    }
  }
}

/** Translates a failure to open into the code a user acts on; the protocol's own code stays in details. */
export function classifyOpenFailure(error: unknown, uri: LibvirtUri): ZenithError {
  if (!(error instanceof ZenithError))
    return new ZenithError('ZEN_CONNECTION_FAILED', `cannot open ${uri.text}: ${String(error)}`, {
      uri: uri.text,
    });
  if (error.code === 'ZEN_CONFIG_INVALID') return error;
  const details = { uri: uri.text, protocolCode: error.code, ...error.details };
  const cause = typeof error.details.cause === 'string' ? error.details.cause : '';
  const libvirtCode = libvirtErrorCode(error);
  const refused =
    error.code === 'LIBVIRT_RPC_AUTH_UNSUPPORTED' ||
    error.details.refused === 'client-certificate' ||
    (error.code === 'LIBVIRT_RPC_CONNECT_FAILED' && TLS_TRUST_FAILURE.test(cause)) ||
    libvirtCode === VIR_ERR.AUTH_FAILED ||
    libvirtCode === VIR_ERR.ACCESS_DENIED ||
    libvirtCode === VIR_ERR.OPERATION_DENIED;
  if (refused)
    return new ZenithError(
      'ZEN_CONNECTION_AUTH_FAILED',
      `libvirt at ${uri.text} did not accept our credentials: ${error.message}`,
      details,
      { cause: error },
    );
  return new ZenithError(
    'ZEN_CONNECTION_FAILED',
    `cannot open ${uri.text}: ${error.message}`,
    details,
    { cause: error },
  );
}

/** Opens the connection the settings describe; throws ZEN_CONNECTION_FAILED or ZEN_CONNECTION_AUTH_FAILED. */
export async function openLibvirt(options: OpenOptions): Promise<LibvirtClient> {
  const uri = parseLibvirtUri(options.settings.uri);
  try {
    const transport = await openTransport(uri, options);
    return await LibvirtClient.connect(transport, {
      uri: uri.remoteName,
      clock: options.clock,
      callTimeoutMs: options.settings.callTimeoutMs,
      // The daemon is asked after each second of silence, so its silence (high availability's
      // signal for the host) is known to a second; it is declared dead after 25 s, as with
      // libvirt's own 5 × 5 s.
      keepalive: { intervalMs: 1000, maxMissed: 25 },
      handshakeTimeoutMs: options.connectTimeoutMs ?? 10_000,
    });
  } catch (error) {
    throw classifyOpenFailure(error, uri);
  }
}
