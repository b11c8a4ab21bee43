/**
 * libvirt connection URIs: `driver[+transport]://[host[:port]]/path[?query]`,
 * e.g. `qemu:///system`, `qemu+tls://kvm-1/system`, `test+unix:///default`,
 * `lxc:///`, `xen+tls://xen-1/system`. As in libvirt, a URI with a host and no
 * transport means TLS, one without a host the local unix socket. The daemon
 * is asked to open the URI stripped of transport and host (`qemu:///system`).
 */
import { isAbsolute, normalize } from 'node:path';
import { ZenithError } from '../../core/errors.js';

export type LibvirtTransport = 'unix' | 'tcp' | 'tls';

export interface LibvirtUri {
  /** The URI as configured. */
  text: string;
  /** The hypervisor driver: qemu, test, lxc, xen, … */
  driver: string;
  transport: LibvirtTransport;
  host: string | null;
  port: number | null;
  /** The daemon's unix socket (unix transport only). */
  socket: string | null;
  /** libvirt's `pkipath`: a directory with cacert.pem, clientcert.pem, clientkey.pem (tls only). */
  pkiPath: string | null;
  /** What CONNECT_OPEN asks the daemon to open, e.g. qemu:///system. */
  remoteName: string;
}

export const DEFAULT_LIBVIRT_SOCKET = '/run/libvirt/libvirt-sock';
const DEFAULT_PORTS = { tcp: 16509, tls: 16514 } as const;

/** Drivers a libvirt daemon serves over its remote protocol (esx, hyperv and the like run client-side only). */
const daemonDrivers = [
  'qemu',
  'test',
  'lxc',
  'xen',
  'libxl',
  'ch',
  'bhyve',
  'vbox',
  'vz',
  'openvz',
];
const unsupportedTransports = ['ssh', 'libssh', 'libssh2', 'ext'];
const knownQuery = ['socket', 'pkipath', 'name'];

function invalid(uri: string, reason: string, details: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('ZEN_CONFIG_INVALID', `libvirt URI '${uri}': ${reason}`, {
    key: 'uri',
    uri,
    ...details,
  });
}

export function parseLibvirtUri(text: string): LibvirtUri {
  if (text.length === 0 || text.length > 1024 || /\s/.test(text))
    throw invalid(text, 'expected driver[+transport]://[host[:port]]/path, without spaces');
  const scheme = /^([a-z][a-z0-9]*)(?:\+([a-z0-9]+))?:\/\//.exec(text);
  if (!scheme) throw invalid(text, 'expected driver[+transport]://[host[:port]]/path');
  const driver = scheme[1]!;
  if (!daemonDrivers.includes(driver))
    throw invalid(
      text,
      `unknown or client-side driver '${driver}' (known: ${daemonDrivers.join(', ')})`,
      {
        driver,
      },
    );
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(text, 'not a valid URI');
  }
  if (url.username || url.password)
    throw invalid(
      text,
      'a user name in the URI is only used by the ssh transport, which Zenith does not offer',
    );
  if (url.hash) throw invalid(text, 'a fragment (#…) has no meaning here');
  const host = url.hostname === '' ? null : url.hostname.replace(/^\[(.*)\]$/, '$1');
  const requested = scheme[2];
  if (requested && unsupportedTransports.includes(requested))
    throw invalid(
      text,
      `the ${requested} transport is not supported; use tls (or tcp on a trusted network)`,
      {
        transport: requested,
      },
    );
  if (requested && !['unix', 'tcp', 'tls'].includes(requested))
    throw invalid(text, `unknown transport '${requested}' (unix, tcp, tls)`, {
      transport: requested,
    });
  const transport: LibvirtTransport =
    (requested as LibvirtTransport | undefined) ?? (host ? 'tls' : 'unix');
  if (transport === 'unix' && host)
    throw invalid(text, 'the unix transport reaches the local daemon only: leave the host out');
  if (transport !== 'unix' && !host) throw invalid(text, `the ${transport} transport needs a host`);
  const port = url.port ? Number(url.port) : transport === 'unix' ? null : DEFAULT_PORTS[transport];

  const query = url.searchParams;
  const unknown = [...query.keys()].filter((key) => !knownQuery.includes(key));
  if (unknown.length > 0)
    throw invalid(
      text,
      `unsupported parameter(s) ${unknown.join(', ')} (supported: ${knownQuery.join(', ')})`,
      {
        unknown,
      },
    );
  const socket = query.get('socket');
  if (socket !== null && (transport !== 'unix' || !isAbsolute(socket)))
    throw invalid(text, "'socket' is an absolute path, for the unix transport only");
  const pkiPath = query.get('pkipath');
  if (pkiPath !== null && (transport !== 'tls' || !isAbsolute(pkiPath)))
    throw invalid(text, "'pkipath' is an absolute directory, for the tls transport only");
  const path = url.pathname === '' ? '/' : decodeURIComponent(url.pathname);
  const name = query.get('name');
  if (name !== null && !/^[a-z][a-z0-9]*:\/\//.test(name))
    throw invalid(text, "'name' is the URI the daemon opens, e.g. qemu:///system");
  return {
    text,
    driver,
    transport,
    host,
    port,
    socket: transport === 'unix' ? (socket ?? DEFAULT_LIBVIRT_SOCKET) : null,
    pkiPath,
    remoteName: name ?? `${driver}://${path}`,
  };
}

/**
 * Where the daemon listens, however the URI spells it: its socket path (normalised, or resolved by
 * `resolveSocket`, e.g. through symbolic links), or host and port.
 */
export function daemonAddress(
  uri: LibvirtUri,
  resolveSocket: (path: string) => string = normalize,
): string {
  if (uri.socket !== null) return `unix:${resolveSocket(uri.socket)}`;
  return `[${(uri.host ?? '').toLowerCase()}]:${uri.port ?? ''}`;
}
