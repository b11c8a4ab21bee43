/**
 * Where the VM ran, as a vertical timeline: one entry per interval (host, power state, from,
 * until, how long), newest first as the API answers them.
 */
import { Text, Timeline } from '@mantine/core';
import type { LocationInterval } from '../api/types.ts';

const time = (ms: number) => new Date(ms).toLocaleString();

export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function LocationTimeline(props: { intervals: LocationInterval[]; now: number }) {
  const { intervals, now } = props;
  return (
    <Timeline active={0} bulletSize={14} lineWidth={2} role="list" aria-label="Location history">
      {intervals.map((interval) => (
        <Timeline.Item
          key={`${interval.from}-${interval.hostId ?? 'none'}`}
          role="listitem"
          title={`${interval.hostName ?? 'no host'} · ${interval.powerState}`}
          color={interval.powerState === 'running' ? 'green' : 'gray'}
        >
          <Text size="xs" c="dimmed">
            {time(interval.from)} → {interval.to === null ? 'now' : time(interval.to)}
          </Text>
          <Text size="xs">{formatDuration((interval.to ?? now) - interval.from)}</Text>
        </Timeline.Item>
      ))}
    </Timeline>
  );
}
