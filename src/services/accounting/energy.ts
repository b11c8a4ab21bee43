/**
 * Energy from sampled power draw, pure (the machines' sensor history records
 * the samples; reports price the energy). Between two consecutive samples the
 * draw is taken to move in a straight line (a trapezoid); a gap longer than
 * `maxGapMs` (three sampling periods: the BMC did not answer, Zenith was
 * down) is not guessed: it counts neither in the energy nor in the time
 * covered. A period that starts or ends between two samples takes the part
 * of their trapezoid inside it.
 */

export interface WattSample {
  at: number;
  /** null: the BMC answered without a power reading (it breaks the line like a gap). */
  watts: number | null;
}

export interface EnergySpan {
  /** Watt-milliseconds drawn (W × ms). */
  wattMs: number;
  /** Milliseconds the samples cover. */
  coveredMs: number;
}

export interface EnergyFigures {
  kWh: number;
  coveredMs: number;
  /** Over the time covered; null when nothing is. */
  averageWatts: number | null;
}

export const wattMsPerKWh = 3_600_000_000;

/**
 * Energy in each of the consecutive spans [bounds[i], bounds[i + 1]) (bounds ascending; samples
 * sorted by time). One pass over both lists, so a report's thousands of slices cost little.
 */
export function energyBetween(
  samples: readonly WattSample[],
  bounds: readonly number[],
  maxGapMs: number,
): EnergySpan[] {
  const spans: EnergySpan[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) spans.push({ wattMs: 0, coveredMs: 0 });
  if (spans.length === 0) return spans;
  let span = 0;
  for (let s = 0; s + 1 < samples.length; s++) {
    const a = samples[s]!;
    const b = samples[s + 1]!;
    if (a.watts === null || b.watts === null) continue;
    const length = b.at - a.at;
    if (length <= 0 || length > maxGapMs) continue;
    if (b.at <= bounds[0]!) continue;
    if (a.at >= bounds[bounds.length - 1]!) break;
    // The straight line between the two readings, cut at every bound it crosses.
    const wattsAt = (t: number) => a.watts! + ((b.watts! - a.watts!) * (t - a.at)) / length;
    while (span > 0 && bounds[span]! > a.at) span--;
    while (span < spans.length && bounds[span + 1]! <= a.at) span++;
    for (let k = span; k < spans.length && bounds[k]! < b.at; k++) {
      const start = Math.max(a.at, bounds[k]!);
      const end = Math.min(b.at, bounds[k + 1]!);
      if (end <= start) continue;
      spans[k]!.wattMs += ((wattsAt(start) + wattsAt(end)) / 2) * (end - start);
      spans[k]!.coveredMs += end - start;
    }
  }
  return spans;
}

/** The energy drawn in [from, to). */
export function energyOf(
  samples: readonly WattSample[],
  from: number,
  to: number,
  maxGapMs: number,
): EnergyFigures {
  const [span] = energyBetween(samples, [from, to], maxGapMs);
  const wattMs = span?.wattMs ?? 0;
  const coveredMs = span?.coveredMs ?? 0;
  return {
    kWh: wattMs / wattMsPerKWh,
    coveredMs,
    averageWatts: coveredMs > 0 ? wattMs / coveredMs : null,
  };
}

/** Where a report reads the power draw of the machines under its hosts (the sensor history). */
export interface EnergyReadings {
  /** Longer than this between two samples is a gap, not guessed. */
  readonly maxGapMs: number;
  /** Samples per machine around [from, to), each list in time order. */
  watts(
    machineIds: readonly string[],
    from: number,
    to: number,
  ): Promise<Map<string, WattSample[]>>;
}
