/**
 * The report period cut into slices inside which nothing that affects a
 * price changes: report bucket, rate card version, time-of-use window and
 * (for prorated monthly charges) the calendar month all stay the same.
 */
import { localChanges, type LocalParts } from './local-time.js';
import type { CompiledRateCard } from './rate-card.js';

export type Granularity = 'hourly' | 'daily' | 'monthly';

export interface Slice {
  start: number;
  end: number;
  bucket: number;
  /** Index into the cards given, or -1 before the first card's effective date. */
  card: number;
  /** Index into that card's window names, or -1 outside every window. */
  window: number;
  /** Length of the card zone's calendar month around this slice (for monthly charges). */
  monthMs: number;
}

export interface Timeline {
  buckets: Array<{ start: number; end: number }>;
  slices: Slice[];
}

const bucketKey: Record<Granularity, (p: LocalParts) => string> = {
  hourly: (p) => `${p.year}-${p.month}-${p.day}T${p.hour}`,
  daily: (p) => `${p.year}-${p.month}-${p.day}`,
  monthly: (p) => `${p.year}-${p.month}`,
};

const dayMs = 86_400_000;

/** Cards sorted by effective date; each applies until the next one starts. */
export function buildTimeline(
  from: number,
  to: number,
  granularity: Granularity,
  timeZone: string,
  cards: readonly CompiledRateCard[],
  /** Also cut at every whole multiple of this since the epoch (energy is shared hour by hour). */
  cutEveryMs?: number,
): Timeline {
  const bucketStarts = localChanges(timeZone, from, to, bucketKey[granularity]).map((c) => c.at);
  const buckets = bucketStarts.map((start, i) => ({ start, end: bucketStarts[i + 1] ?? to }));
  // Per card: the part of the period it governs, its window changes and its month starts.
  const boundaries = new Set<number>([from, ...bucketStarts]);
  const cardRanges = cards.map((compiled, i) => {
    const start = Math.max(from, compiled.card.effectiveFrom);
    const end = Math.min(to, cards[i + 1]?.card.effectiveFrom ?? to);
    if (start >= end) return { start, end, windows: [], months: [] };
    boundaries.add(start);
    const windows = localChanges(compiled.card.body.timeZone, start, end, (p) =>
      compiled.windowOf(p.weekday, p.hour),
    ).map((c) => ({ at: c.at, window: c.key === null ? -1 : compiled.windows.indexOf(c.key) }));
    for (const w of windows) boundaries.add(w.at);
    // Month starts are found from a month before to a month after, so both ends are whole months.
    const monthStarts = localChanges(
      compiled.card.body.timeZone,
      start - 32 * dayMs,
      end + 32 * dayMs,
      (p) => `${p.year}-${p.month}`,
    )
      .slice(1)
      .map((c) => c.at);
    const months = monthStarts
      .slice(0, -1)
      .map((at, m) => ({ at, length: monthStarts[m + 1]! - at }));
    for (const month of months) if (month.at > start && month.at < end) boundaries.add(month.at);
    return { start, end, windows, months };
  });
  if (cutEveryMs !== undefined)
    for (let at = Math.ceil(from / cutEveryMs) * cutEveryMs; at < to; at += cutEveryMs)
      boundaries.add(at);
  const points = [...boundaries].filter((b) => b >= from && b < to).sort((a, b) => a - b);
  const slices: Slice[] = [];
  let bucket = 0;
  for (let i = 0; i < points.length; i++) {
    const start = points[i]!;
    const end = points[i + 1] ?? to;
    while (bucket + 1 < buckets.length && buckets[bucket + 1]!.start <= start) bucket++;
    let card = -1;
    for (let c = 0; c < cardRanges.length; c++) {
      const range = cardRanges[c]!;
      if (range.start <= start && start < range.end) card = c;
    }
    let window = -1;
    let monthMs = 30 * dayMs;
    if (card >= 0) {
      const range = cardRanges[card]!;
      for (const w of range.windows) if (w.at <= start) window = w.window;
      for (const m of range.months) if (m.at <= start) monthMs = m.length;
    }
    slices.push({ start, end, bucket, card, window, monthMs });
  }
  return { buckets, slices };
}
