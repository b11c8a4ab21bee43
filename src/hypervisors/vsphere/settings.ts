/** Settings of a vsphere connection, checked when it is added (ZEN_CONFIG_INVALID); the password is its secret. */
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { ZenithError } from '../../core/errors.js';
import { normalizeThumbprint } from '../../protocols/tls/verified-tls.js';

export interface VsphereSettings {
  /** The SDK endpoint: https://HOST/sdk (a bare host name means that). */
  url: string;
  username: string;
  /** Pin this certificate (SHA-256 or SHA-1 thumbprint) instead of verifying it against CAs. */
  thumbprint?: string;
  /** PEM CA certificates to trust instead of the system's. */
  ca?: string;
  /** A file with them. */
  caFile?: string;
  /** How long one WaitForUpdatesEx waits for changes before asking again (seconds). */
  watchWaitSeconds: number;
  /** How long a guest shutdown may take before the task fails (seconds). */
  shutdownTimeoutSeconds: number;
}

const known = [
  'url',
  'username',
  'thumbprint',
  'ca',
  'caFile',
  'watchWaitSeconds',
  'shutdownTimeoutSeconds',
];

function invalid(message: string, key?: string): ZenithError {
  return new ZenithError('ZEN_CONFIG_INVALID', message, key ? { key } : {});
}

export function validateVsphereSettings(settings: Record<string, unknown>): VsphereSettings {
  const unknown = Object.keys(settings).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      `unknown vsphere setting(s): ${unknown.join(', ')} (known: ${known.join(', ')})`,
      { unknown },
    );
  if (typeof settings.url !== 'string' || settings.url.length === 0 || settings.url.length > 2048)
    throw invalid(
      "setting 'url' is the vCenter or ESXi address, e.g. https://vcenter.example.com/sdk",
      'url',
    );
  let url: URL;
  try {
    url = new URL(settings.url.includes('://') ? settings.url : `https://${settings.url}`);
  } catch {
    throw invalid(`setting 'url' is not a URL: ${settings.url}`, 'url');
  }
  if (url.protocol !== 'https:') throw invalid("setting 'url' must use https", 'url');
  if (url.username || url.password)
    throw invalid(
      "setting 'url' may not carry credentials: give 'username', and the password as the secret",
      'url',
    );
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/sdk';
  if (
    typeof settings.username !== 'string' ||
    settings.username.length === 0 ||
    settings.username.length > 256
  )
    throw invalid("setting 'username' is required (e.g. administrator@vsphere.local)", 'username');
  const out: VsphereSettings = {
    url: url.href,
    username: settings.username,
    watchWaitSeconds: 30,
    shutdownTimeoutSeconds: 300,
  };
  if (settings.thumbprint !== undefined) {
    const pin =
      typeof settings.thumbprint === 'string'
        ? normalizeThumbprint(settings.thumbprint)
        : undefined;
    if (!pin)
      throw invalid(
        "setting 'thumbprint' is a SHA-256 or SHA-1 certificate thumbprint in hex",
        'thumbprint',
      );
    out.thumbprint = pin;
  }
  if (settings.ca !== undefined) {
    if (typeof settings.ca !== 'string' || !settings.ca.includes('-----BEGIN CERTIFICATE-----'))
      throw invalid("setting 'ca' is PEM text with one or more certificates", 'ca');
    out.ca = settings.ca;
  }
  if (settings.caFile !== undefined) {
    if (typeof settings.caFile !== 'string' || !isAbsolute(settings.caFile))
      throw invalid("setting 'caFile' is an absolute path", 'caFile');
    out.caFile = settings.caFile;
  }
  if (settings.watchWaitSeconds !== undefined) {
    const wait = settings.watchWaitSeconds;
    if (typeof wait !== 'number' || !Number.isInteger(wait) || wait < 1 || wait > 600)
      throw invalid(
        "setting 'watchWaitSeconds' is a whole number from 1 to 600",
        'watchWaitSeconds',
      );
    out.watchWaitSeconds = wait;
  }
  if (settings.shutdownTimeoutSeconds !== undefined) {
    const wait = settings.shutdownTimeoutSeconds;
    if (typeof wait !== 'number' || !Number.isInteger(wait) || wait < 1 || wait > 3600)
      throw invalid(
        "setting 'shutdownTimeoutSeconds' is a whole number from 1 to 3600",
        'shutdownTimeoutSeconds',
      );
    out.shutdownTimeoutSeconds = wait;
  }
  return out;
}

/** The CA text to trust: the setting, or the file's content read now. */
export function caOf(settings: VsphereSettings): string | undefined {
  if (settings.ca) return settings.ca;
  if (!settings.caFile) return undefined;
  try {
    return readFileSync(settings.caFile, 'utf8');
  } catch (error) {
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      `cannot read caFile ${settings.caFile}: ${String(error)}`,
      {
        key: 'caFile',
      },
    );
  }
}
