import { ZenithError } from '../../api/errors.js';

/** Accepts ISO 8601 (2026-06-01, 2026-06-01T08:00Z) or milliseconds since the epoch. */
export function instant(text: string, what: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms))
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      `${what} '${text}' is not a date (use ISO 8601, e.g. 2026-06-01)`,
    );
  return ms;
}
