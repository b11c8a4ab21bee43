/**
 * Settings of the BMC connection families, checked when a connection is added
 * (ZEN_CONFIG_INVALID). The BMC password is the connection's secret (sealed,
 * never logged, never in settings).
 */
import { ZenithError } from '../core/errors.js';
import { intSetting, refuseUnknownSettings, settingInvalid } from '../hypervisors/int-setting.js';
import {
  httpsUrlSetting,
  readTlsSettings,
  tlsSettingKeys,
  type TlsSettings,
} from '../hypervisors/tls-settings.js';

export interface RedfishSettings extends TlsSettings {
  /** The BMC's address: https://HOST[:PORT] (a bare host name means that). */
  url: string;
  username: string;
  /** How often power and health are read again (seconds). */
  pollSeconds: number;
  /** Deadline of one request (seconds). */
  timeoutSeconds: number;
  /** How long fencing may take before it fails unconfirmed (seconds). */
  fenceDeadlineSeconds: number;
}

export interface IpmiSettings {
  /** The BMC's address (host name or IP). */
  host: string;
  /** Its IPMI LAN (UDP) port; default 623. */
  port: number;
  username: string;
  pollSeconds: number;
  timeoutSeconds: number;
  fenceDeadlineSeconds: number;
}

function username(settings: Record<string, unknown>): string {
  const value = settings.username;
  if (typeof value !== 'string' || value.length === 0 || value.length > 64)
    throw settingInvalid(
      "setting 'username' is the BMC user (the password is the secret)",
      'username',
    );
  return value;
}

function timing(settings: Record<string, unknown>, timeoutDefault: number) {
  return {
    pollSeconds: intSetting(settings, 'pollSeconds', 30, 1, 3600),
    timeoutSeconds: intSetting(settings, 'timeoutSeconds', timeoutDefault, 1, 300),
    fenceDeadlineSeconds: intSetting(settings, 'fenceDeadlineSeconds', 60, 1, 600),
  };
}

export function validateRedfishSettings(settings: Record<string, unknown>): RedfishSettings {
  refuseUnknownSettings('redfish', settings, [
    'url',
    'username',
    ...tlsSettingKeys,
    'pollSeconds',
    'timeoutSeconds',
    'fenceDeadlineSeconds',
  ]);
  const url = httpsUrlSetting(
    settings.url,
    "the BMC's address, e.g. https://bmc-r12-04.example.com",
  );
  return {
    url: url.origin,
    username: username(settings),
    ...readTlsSettings(settings),
    ...timing(settings, 30),
  };
}

const hostName = /^[a-zA-Z0-9]([a-zA-Z0-9.:-]{0,252})$/;

export function validateIpmiSettings(settings: Record<string, unknown>): IpmiSettings {
  refuseUnknownSettings('ipmi', settings, [
    'host',
    'port',
    'username',
    'pollSeconds',
    'timeoutSeconds',
    'fenceDeadlineSeconds',
  ]);
  if (typeof settings.host !== 'string' || !hostName.test(settings.host))
    throw settingInvalid("setting 'host' is the BMC's host name or IP address", 'host');
  return {
    host: settings.host,
    port: intSetting(settings, 'port', 623, 1, 65535),
    username: username(settings),
    ...timing(settings, 20),
  };
}

/** The secret a BMC connection needs: its password. */
export function bmcPassword(type: string, secret: string | null): string {
  if (!secret)
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      `a ${type} connection needs the BMC password as its secret`,
      { key: 'secret' },
    );
  return secret;
}
