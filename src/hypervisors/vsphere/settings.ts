/** Settings of a vsphere connection, checked when it is added (ZEN_CONFIG_INVALID); the password is its secret. */
import { caOf, httpsUrlSetting, readTlsSettings, type TlsSettings } from '../tls-settings.js';
import { refuseUnknownSettings, settingInvalid } from '../int-setting.js';

export interface VsphereSettings extends TlsSettings {
  /** The SDK endpoint: https://HOST/sdk (a bare host name means that). */
  url: string;
  username: string;
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

export function validateVsphereSettings(settings: Record<string, unknown>): VsphereSettings {
  refuseUnknownSettings('vsphere', settings, known);
  const url = httpsUrlSetting(
    settings.url,
    'the vCenter or ESXi address, e.g. https://vcenter.example.com/sdk',
  );
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/sdk';
  if (
    typeof settings.username !== 'string' ||
    settings.username.length === 0 ||
    settings.username.length > 256
  )
    throw settingInvalid(
      "setting 'username' is required (e.g. administrator@vsphere.local)",
      'username',
    );
  const out: VsphereSettings = {
    url: url.href,
    username: settings.username,
    watchWaitSeconds: 30,
    shutdownTimeoutSeconds: 300,
  };
  Object.assign(out, readTlsSettings(settings));
  if (settings.watchWaitSeconds !== undefined) {
    const wait = settings.watchWaitSeconds;
    if (typeof wait !== 'number' || !Number.isInteger(wait) || wait < 1 || wait > 600)
      throw settingInvalid(
        "setting 'watchWaitSeconds' is a whole number from 1 to 600",
        'watchWaitSeconds',
      );
    out.watchWaitSeconds = wait;
  }
  if (settings.shutdownTimeoutSeconds !== undefined) {
    const wait = settings.shutdownTimeoutSeconds;
    if (typeof wait !== 'number' || !Number.isInteger(wait) || wait < 1 || wait > 3600)
      throw settingInvalid(
        "setting 'shutdownTimeoutSeconds' is a whole number from 1 to 3600",
        'shutdownTimeoutSeconds',
      );
    out.shutdownTimeoutSeconds = wait;
  }
  return out;
}

export { caOf };
