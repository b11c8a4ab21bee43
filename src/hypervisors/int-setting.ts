/**
 * Settings of a connection, read and checked one way by every family: the names it knows, and
 * whole numbers.
 */
import { ZenithError } from '../core/errors.js';

/** A whole-number setting from min to max (the fallback when absent); ZEN_CONFIG_INVALID otherwise. */
export function intSetting(
  settings: Record<string, unknown>,
  key: string,
  fallback: number,
  min: number,
  max: number,
  /** Named in the refusal ("milliseconds"). */
  unit?: string,
): number {
  const value = settings[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      `setting '${key}' must be a whole number${unit === undefined ? '' : ` of ${unit}`} from ${min} to ${max}`,
      { key, value },
    );
  }
  return value;
}

/** The refusal of a setting (ZEN_CONFIG_INVALID), naming the setting when it is one. */
export function settingInvalid(message: string, key?: string): ZenithError {
  return new ZenithError('ZEN_CONFIG_INVALID', message, key ? { key } : {});
}

/** Refuses settings the family does not know (a misspelt name would otherwise be ignored). */
export function refuseUnknownSettings(
  family: string,
  settings: Record<string, unknown>,
  known: readonly string[],
): void {
  const unknown = Object.keys(settings).filter((key) => !known.includes(key));
  if (unknown.length > 0)
    throw new ZenithError(
      'ZEN_CONFIG_INVALID',
      `unknown ${family} setting(s): ${unknown.join(', ')} (known: ${known.join(', ')})`,
      { unknown },
    );
}
