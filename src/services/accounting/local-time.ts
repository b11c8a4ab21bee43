/**
 * Wall-clock time in a named IANA zone, through Intl only. Every zone offset
 * in use is a multiple of 15 minutes, so walking UTC in 15-minute steps finds
 * every local hour, day and month boundary (and DST change) exactly.
 */
import { ZenithError } from '../../core/errors.js';

export interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  /** 0 = Sunday … 6 = Saturday. */
  weekday: number;
}

const quarterHour = 15 * 60_000;
const weekdays: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

export function assertTimeZone(timeZone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
  } catch {
    throw new ZenithError('ZEN_BAD_RATE_CARD', `'${timeZone}' is not an IANA time zone`, {
      field: 'timeZone',
      timeZone,
    });
  }
}

export function localPartsOf(timeZone: string): (ms: number) => LocalParts {
  assertTimeZone(timeZone);
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    weekday: 'short',
  });
  return (ms) => {
    const parts: Record<string, string> = {};
    for (const part of format.formatToParts(ms)) parts[part.type] = part.value;
    return {
      year: Number(parts.year),
      month: Number(parts.month),
      day: Number(parts.day),
      hour: Number(parts.hour),
      weekday: weekdays[parts.weekday ?? ''] ?? 0,
    };
  };
}

/**
 * The instants in [from, to) where `keyOf(local time)` changes, with the key
 * that starts there; the first entry is at `from`.
 */
export function localChanges<K>(
  timeZone: string,
  from: number,
  to: number,
  keyOf: (parts: LocalParts) => K,
): Array<{ at: number; key: K }> {
  const partsOf = localPartsOf(timeZone);
  const changes: Array<{ at: number; key: K }> = [{ at: from, key: keyOf(partsOf(from)) }];
  for (
    let at = Math.floor(from / quarterHour) * quarterHour + quarterHour;
    at < to;
    at += quarterHour
  ) {
    const key = keyOf(partsOf(at));
    if (key !== changes[changes.length - 1]!.key) changes.push({ at, key });
  }
  return changes;
}
