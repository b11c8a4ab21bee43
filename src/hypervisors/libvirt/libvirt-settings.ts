/**
 * Settings of a libvirt connection, checked once when the connection is added
 * (ZEN_CONFIG_INVALID names the setting) and normalised for the driver.
 */
import { isAbsolute } from 'node:path';
import { ZenithError } from '../../core/errors.js';
import { parseLibvirtUri, type LibvirtUri } from './libvirt-uri.js';
import { intSetting, refuseUnknownSettings } from '../int-setting.js';

export interface LibvirtSettings {
  uri: string;
  /** TLS: CA certificate, client certificate and client key files (the key may come from the secret instead). */
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** TLS: the name the server certificate is checked against (default: the URI's host). */
  tlsServerName?: string;
  /** The host's name in the inventory (default: the daemon's hostname). */
  hostName?: string;
  /** How new QEMU domains run: kvm, tcg, or auto (kvm when the host offers it). */
  accelerator: 'auto' | 'kvm' | 'tcg';
  /** The storage pool that holds disks of VMs created through Zenith. */
  storagePool: string;
  /** Graceful shutdown: how long the guest gets before it is powered off. */
  shutdownTimeoutMs: number;
  /** Time limit of an ordinary call (not of migrations). */
  callTimeoutMs: number;
  /** The URI by which another host's libvirtd reaches this one, for migrations to this host. */
  migrationUri?: string;
  /** Where QEMU on another host sends migration data to this host, e.g. tcp://10.0.0.5. */
  migrationDataUri?: string;
}

const known = [
  'uri',
  'tlsCaFile',
  'tlsCertFile',
  'tlsKeyFile',
  'tlsServerName',
  'hostName',
  'accelerator',
  'storagePool',
  'shutdownTimeoutMs',
  'callTimeoutMs',
  'migrationUri',
  'migrationDataUri',
];

function fail(key: string, message: string): never {
  throw new ZenithError('ZEN_CONFIG_INVALID', `setting '${key}' ${message}`, { key });
}

function optionalString(
  settings: Record<string, unknown>,
  key: string,
  pattern: RegExp,
  what: string,
): string | undefined {
  const value = settings[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !pattern.test(value)) fail(key, `is ${what}`);
  return value;
}

function optionalPath(settings: Record<string, unknown>, key: string): string | undefined {
  const value = settings[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !isAbsolute(value) || value.length > 4096)
    fail(key, 'is an absolute path');
  return value;
}

export function validateLibvirtSettings(settings: Record<string, unknown>): LibvirtSettings {
  refuseUnknownSettings('libvirt', settings, known);
  if (typeof settings.uri !== 'string')
    fail('uri', 'is required: a libvirt URI such as qemu:///system or qemu+tls://host/system');
  const uri = parseLibvirtUri(settings.uri);
  const tls = {
    tlsCaFile: optionalPath(settings, 'tlsCaFile'),
    tlsCertFile: optionalPath(settings, 'tlsCertFile'),
    tlsKeyFile: optionalPath(settings, 'tlsKeyFile'),
    tlsServerName: optionalString(
      settings,
      'tlsServerName',
      /^[a-zA-Z0-9.-]{1,253}$/,
      'a host name',
    ),
  };
  if (uri.transport !== 'tls')
    for (const [key, value] of Object.entries(tls))
      if (value !== undefined) fail(key, `applies to tls URIs only (this one is ${uri.transport})`);
  const accelerator = settings.accelerator ?? 'auto';
  if (accelerator !== 'auto' && accelerator !== 'kvm' && accelerator !== 'tcg')
    fail('accelerator', 'is auto, kvm or tcg');
  const migrationUri = optionalString(settings, 'migrationUri', /^\S{1,1024}$/, 'a libvirt URI');
  if (migrationUri !== undefined) {
    let parsed: LibvirtUri;
    try {
      parsed = parseLibvirtUri(migrationUri);
    } catch (error) {
      fail('migrationUri', `is not a valid libvirt URI: ${(error as Error).message}`);
    }
    if (parsed.transport === 'unix')
      fail('migrationUri', 'must name this host as another host reaches it (tcp or tls)');
  }
  const out: LibvirtSettings = {
    uri: uri.text,
    accelerator,
    storagePool:
      optionalString(settings, 'storagePool', /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/, 'a pool name') ??
      'default',
    shutdownTimeoutMs: intSetting(
      settings,
      'shutdownTimeoutMs',
      60_000,
      0,
      3_600_000,
      'milliseconds',
    ),
    callTimeoutMs: intSetting(settings, 'callTimeoutMs', 60_000, 1000, 3_600_000, 'milliseconds'),
  };
  const optional = {
    ...tls,
    hostName: optionalString(
      settings,
      'hostName',
      /^[a-zA-Z0-9][a-zA-Z0-9.-]{0,252}$/,
      'a host name',
    ),
    migrationUri,
    migrationDataUri: optionalString(
      settings,
      'migrationDataUri',
      /^(tcp|rdma|unix):\/\/[^\s/?#]{1,253}$/,
      'where migration data reaches this host, e.g. tcp://10.0.0.5 or tcp://10.0.0.5:49152',
    ),
  };
  for (const [key, value] of Object.entries(optional))
    if (value !== undefined) (out as unknown as Record<string, unknown>)[key] = value;
  return out;
}
