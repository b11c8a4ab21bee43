/**
 * Where the VM ran, as a vertical timeline: one entry per interval (host, power state, from,
 * until, how long), newest first as the API answers them. An interval HA opened (reason
 * `failover`) is marked so, with the host it left and how long the VM was down: the interval
 * before it ends when that host failed, and this one begins when the VM ran again.
 */
import { Badge, Group, Text, Timeline, Tooltip } from '@mantine/core';
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

/** What a failover interval says of the one before it: the failed host and the time down. */
function failoverOf(interval: LocationInterval, before: LocationInterval | undefined) {
  if (interval.reason !== 'failover') return null;
  const failedAt = before?.to ?? null;
  return {
    from: before?.hostName ?? 'its host',
    failedAt,
    downMs: failedAt === null ? null : interval.from - failedAt,
  };
}

export function LocationTimeline(props: { intervals: LocationInterval[]; now: number }) {
  const { intervals, now } = props;
  return (
    <Timeline active={0} bulletSize={14} lineWidth={2} role="list" aria-label="Location history">
      {intervals.map((interval, index) => {
        const failover = failoverOf(interval, intervals[index + 1]);
        const down =
          failover?.downMs == null ? '' : `; down ${(failover.downMs / 1000).toFixed(1)} s`;
        return (
          <Timeline.Item
            key={`${interval.from}-${interval.hostId ?? 'none'}`}
            role="listitem"
            data-reason={interval.reason ?? ''}
            title={
              <Group gap="xs">
                <span>{`${interval.hostName ?? 'no host'} · ${interval.powerState}`}</span>
                {failover && (
                  <Tooltip
                    label={`${failover.from} failed${failover.failedAt === null ? '' : ` at ${time(failover.failedAt)}`}${down}`}
                  >
                    <Badge color="orange" variant="light" size="sm" data-testid="failover-mark">
                      failover
                    </Badge>
                  </Tooltip>
                )}
              </Group>
            }
            color={interval.powerState === 'running' ? 'green' : 'gray'}
          >
            {failover && (
              <Text size="xs">
                Restarted here by high availability after {failover.from} failed{down}
              </Text>
            )}
            <Text size="xs" c="dimmed">
              {time(interval.from)} → {interval.to === null ? 'now' : time(interval.to)}
            </Text>
            <Text size="xs">{formatDuration((interval.to ?? now) - interval.from)}</Text>
          </Timeline.Item>
        );
      })}
    </Timeline>
  );
}
