/**
 * Which backups a retention keeps: the newest `last` ones, and the newest backup of each of the
 * newest N hours, days, ISO weeks, months and years that have one, in the repository's chosen
 * time zone (a day is a local day). A backup any rule keeps is kept; every other is pruned. Each
 * rule after `last` counts only periods no backup kept so far already stands for (as Proxmox Backup
 * Server does), so "last 3, daily 7" keeps three backups of today and one of each of six days
 * before. A retention that names no rule keeps everything.
 */
import { ZenithError } from '../../core/errors.js';
import { assertTimeZone, localPartsOf, type LocalParts } from '../accounting/local-time.js';

export interface Retention {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** IANA zone the periods are counted in (default UTC). */
  timeZone?: string;
}

export interface Dated {
  id: string;
  /** The backup's point in time (ms). */
  takenAt: number;
}

const rules = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

/** The ISO 8601 week of a local date, as "year-week" (a week belongs to the year of its Thursday). */
function isoWeek(parts: LocalParts): string {
  const day = Date.UTC(parts.year, parts.month - 1, parts.day);
  const weekday = (parts.weekday + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(day + (3 - weekday) * 86_400_000);
  const year = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * 86_400_000)) + 1;
  return `${year}-W${week}`;
}

const periodOf: Record<(typeof rules)[number], (parts: LocalParts) => string> = {
  hourly: (p) => `${p.year}-${p.month}-${p.day}T${p.hour}`,
  daily: (p) => `${p.year}-${p.month}-${p.day}`,
  weekly: isoWeek,
  monthly: (p) => `${p.year}-${p.month}`,
  yearly: (p) => `${p.year}`,
};

export function checkRetention(retention: Retention): void {
  for (const key of ['last', ...rules] as const) {
    const value = retention[key];
    if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > 100_000))
      throw new ZenithError('ZEN_BAD_REQUEST', `keep ${key} must be a whole number from 0`, {
        field: key,
        value,
      });
  }
  if (retention.timeZone !== undefined)
    try {
      assertTimeZone(retention.timeZone);
    } catch {
      throw new ZenithError('ZEN_BAD_REQUEST', `'${retention.timeZone}' is not an IANA time zone`, {
        field: 'timeZone',
      });
    }
}

/** Splits backups (of one VM) into those the retention keeps and those it prunes, newest first. */
export function applyRetention<T extends Dated>(
  backups: T[],
  retention: Retention,
): { keep: T[]; prune: T[] } {
  checkRetention(retention);
  const newestFirst = [...backups].sort((a, b) => b.takenAt - a.takenAt || (a.id < b.id ? 1 : -1));
  const named = (['last', ...rules] as const).some((key) => (retention[key] ?? 0) > 0);
  if (!named) return { keep: newestFirst, prune: [] };
  const kept = new Set<string>();
  newestFirst.slice(0, retention.last ?? 0).forEach((backup) => kept.add(backup.id));
  const local = localPartsOf(retention.timeZone ?? 'UTC');
  const parts = new Map(newestFirst.map((backup) => [backup.id, local(backup.takenAt)]));
  for (const rule of rules) {
    const count = retention[rule] ?? 0;
    if (count === 0) continue;
    const period = (backup: T) => periodOf[rule](parts.get(backup.id)!);
    // Periods a backup kept by an earlier rule stands for already.
    const covered = new Set(newestFirst.filter((b) => kept.has(b.id)).map(period));
    const chosen = new Set<string>();
    for (const backup of newestFirst) {
      if (kept.has(backup.id)) continue;
      const key = period(backup);
      if (covered.has(key) || chosen.has(key)) continue;
      if (chosen.size >= count) break;
      chosen.add(key);
      kept.add(backup.id);
    }
  }
  return {
    keep: newestFirst.filter((backup) => kept.has(backup.id)),
    prune: newestFirst.filter((backup) => !kept.has(backup.id)),
  };
}
