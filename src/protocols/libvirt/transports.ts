/**
 * Transports to libvirtd: the local unix socket, plain TCP (tests, trusted
 * networks) and TLS with client certificates (libvirt's x509 layout). Any other
 * Duplex (an SSH tunnel's channel) can be given to LibvirtClient.connect as is.
 */
import { readFile } from 'node:fs/promises';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { ZenithError } from '../../core/errors.js';

export const DEFAULT_UNIX_SOCKET = '/var/run/libvirt/libvirt-sock';
export const DEFAULT_TCP_PORT = 16509;
export const DEFAULT_TLS_PORT = 16514;
/** Where libvirt keeps a client's certificates when given a single directory (pkipath). */
export const LIBVIRT_PKI_FILES = {
  ca: 'cacert.pem',
  cert: 'clientcert.pem',
  key: 'clientkey.pem',
} as const;

export interface TransportOptions {
  /** Give up connecting after this long (wall time: it bounds a kernel operation). */
  connectTimeoutMs?: number;
}

function connectFailed(where: string, error: Error, details: Record<string, unknown>): ZenithError {
  return new ZenithError(
    'LIBVIRT_RPC_CONNECT_FAILED',
    `cannot connect to libvirt at ${where}: ${error.message}`,
    {
      where,
      ...details,
      cause: (error as NodeJS.ErrnoException).code ?? error.message,
    },
  );
}

function whenConnected<S extends Socket>(
  socket: S,
  event: 'connect' | 'secureConnect',
  where: string,
  options: TransportOptions,
  details: Record<string, unknown>,
): Promise<S> {
  return new Promise<S>((resolve, reject) => {
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(connectFailed(where, new Error(`timed out after ${timeoutMs} ms`), details));
    }, timeoutMs);
    const onError = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(connectFailed(where, error, details));
    };
    socket.once('error', onError);
    socket.once(event, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay?.(true);
      resolve(socket);
    });
  });
}

/** The daemon's unix socket (root: /var/run/libvirt/libvirt-sock). */
export function connectUnixSocket(
  path = DEFAULT_UNIX_SOCKET,
  options: TransportOptions = {},
): Promise<Socket> {
  return whenConnected(netConnect({ path }), 'connect', path, options, { transport: 'unix', path });
}

/** Plain TCP (libvirtd --listen with listen_tcp = 1): unencrypted, for tests and trusted networks. */
export function connectTcp(
  host: string,
  port = DEFAULT_TCP_PORT,
  options: TransportOptions = {},
): Promise<Socket> {
  return whenConnected(netConnect({ host, port }), 'connect', `${host}:${port}`, options, {
    transport: 'tcp',
    host,
    port,
  });
}

export interface TlsCredentials {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Reads cacert.pem, clientcert.pem and clientkey.pem from one directory. */
export async function loadLibvirtPki(directory: string): Promise<TlsCredentials> {
  try {
    const [ca, cert, key] = await Promise.all([
      readFile(join(directory, LIBVIRT_PKI_FILES.ca)),
      readFile(join(directory, LIBVIRT_PKI_FILES.cert)),
      readFile(join(directory, LIBVIRT_PKI_FILES.key)),
    ]);
    return { ca, cert, key };
  } catch (error) {
    throw new ZenithError(
      'LIBVIRT_RPC_CONNECT_FAILED',
      `cannot read libvirt client certificates in ${directory}: ${(error as Error).message}`,
      { directory, expected: Object.values(LIBVIRT_PKI_FILES) },
    );
  }
}

export interface TlsTransportOptions extends TransportOptions {
  host: string;
  port?: number;
  /** Either the credentials or the directory holding them. */
  credentials?: TlsCredentials;
  pkiDirectory?: string;
  /** Name checked against the server certificate; defaults to host. */
  servername?: string;
}

/**
 * TLS with a client certificate. After the handshake libvirtd sends one byte:
 * 1 when it accepted our certificate, anything else when it did not.
 */
export async function connectTls(options: TlsTransportOptions): Promise<TLSSocket> {
  const port = options.port ?? DEFAULT_TLS_PORT;
  const where = `${options.host}:${port}`;
  const credentials =
    options.credentials ?? (await loadLibvirtPki(options.pkiDirectory ?? '/etc/pki/libvirt'));
  const socket = tlsConnect({
    host: options.host,
    port,
    ca: credentials.ca,
    cert: credentials.cert,
    key: credentials.key,
    // SNI takes host names only; the certificate is still checked against an IP host.
    ...(options.servername || !isIP(options.host)
      ? { servername: options.servername ?? options.host }
      : {}),
  });
  const details = { transport: 'tls', host: options.host, port };
  await whenConnected(socket, 'secureConnect', where, options, details);
  await readCertificateVerdict(socket, where, details);
  return socket;
}

function readCertificateVerdict(
  socket: TLSSocket,
  where: string,
  details: Record<string, unknown>,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (message: string, extra: Record<string, unknown> = {}) => {
      cleanup();
      socket.destroy();
      reject(connectFailed(where, new Error(message), { ...details, ...extra }));
    };
    const onReadable = () => {
      const byte = socket.read(1) as Buffer | null;
      if (byte === null) return;
      cleanup();
      if (byte[0] !== 1) {
        socket.destroy();
        reject(
          connectFailed(where, new Error('libvirtd refused our client certificate'), {
            ...details,
            refused: 'client-certificate',
          }),
        );
        return;
      }
      resolve();
    };
    // With TLS 1.3 the daemon checks our certificate after our side of the handshake is done;
    // it closes without a verdict when it refuses the certificate.
    const onEnd = () =>
      fail('closed before confirming our certificate', { refused: 'client-certificate' });
    const onError = (error: Error) => fail(error.message);
    const cleanup = () => {
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
    };
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('error', onError);
  });
}
