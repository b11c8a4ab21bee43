/** Times as the HA pages write them: short spans with a tenth of a second, longer ones whole. */
import { formatDuration } from '../components/location-timeline.tsx';

export function formatSpan(ms: number): string {
  if (ms < 10_000) return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
  return formatDuration(ms);
}

export const clock = (ms: number) => new Date(ms).toLocaleString();

/** "+3.2 s" after a reference time, or "—" when it has not happened. */
export function after(ms: number | null, reference: number): string {
  return ms === null ? '—' : `+${formatSpan(ms - reference)}`;
}
