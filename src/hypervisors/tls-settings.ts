/**
 * How a connection over HTTPS trusts its peer, as its settings say: a pinned
 * certificate thumbprint, PEM CA certificates (inline or in a file), or the
 * system's CAs. Shared by every family that speaks HTTPS (vSphere, Redfish).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { ZenithError } from '../core/errors.js';
import { normalizeThumbprint } from '../protocols/tls/verified-tls.js';
import { settingInvalid } from './int-setting.js';

export interface TlsSettings {
  /** Pin this certificate (SHA-256 or SHA-1 thumbprint) instead of verifying it against CAs. */
  thumbprint?: string;
  /** PEM CA certificates to trust instead of the system's. */
  ca?: string;
  /** A file with them. */
  caFile?: string;
}

export const tlsSettingKeys = ['thumbprint', 'ca', 'caFile'] as const;

/**
 * The `url` setting of an HTTPS peer, checked (ZEN_CONFIG_INVALID): a URL or a bare host name
 * (meaning https://NAME), https only, no credentials in it. `example` completes the message.
 */
export function httpsUrlSetting(value: unknown, example: string): URL {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048)
    throw settingInvalid(`setting 'url' is ${example}`, 'url');
  let url: URL;
  try {
    url = new URL(value.includes('://') ? value : `https://${value}`);
  } catch {
    throw settingInvalid(`setting 'url' is not a URL: ${value}`, 'url');
  }
  if (url.protocol !== 'https:') throw settingInvalid("setting 'url' must use https", 'url');
  if (url.username || url.password)
    throw settingInvalid(
      "setting 'url' may not carry credentials: give 'username', and the password as the secret",
      'url',
    );
  return url;
}

/** The TLS settings among `settings`, checked (ZEN_CONFIG_INVALID) and normalised. */
export function readTlsSettings(settings: Record<string, unknown>): TlsSettings {
  const out: TlsSettings = {};
  if (settings.thumbprint !== undefined) {
    const pin =
      typeof settings.thumbprint === 'string'
        ? normalizeThumbprint(settings.thumbprint)
        : undefined;
    if (!pin)
      throw settingInvalid(
        "setting 'thumbprint' is a SHA-256 or SHA-1 certificate thumbprint in hex",
        'thumbprint',
      );
    out.thumbprint = pin;
  }
  if (settings.ca !== undefined) {
    if (typeof settings.ca !== 'string' || !settings.ca.includes('-----BEGIN CERTIFICATE-----'))
      throw settingInvalid("setting 'ca' is PEM text with one or more certificates", 'ca');
    out.ca = settings.ca;
  }
  if (settings.caFile !== undefined) {
    if (typeof settings.caFile !== 'string' || !isAbsolute(settings.caFile))
      throw settingInvalid("setting 'caFile' is an absolute path", 'caFile');
    out.caFile = settings.caFile;
  }
  return out;
}

/** The CA text to trust: the setting, or the file's content read now. */
export function caOf(settings: TlsSettings): string | undefined {
  if (settings.ca) return settings.ca;
  if (!settings.caFile) return undefined;
  try {
    return readFileSync(settings.caFile, 'utf8');
  } catch (error) {
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      `cannot read caFile ${settings.caFile}: ${String(error)}`,
      { key: 'caFile' },
    );
  }
}
