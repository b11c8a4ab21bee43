/**
 * Every host HA watches (and those it cannot, with why): its detector state and since when, how
 * long its channel has been silent, how a failure of it is fenced, and its storage heartbeat as
 * last read. Failed and isolated hosts first, then by name.
 */
import { Stack, Table, Text } from '@mantine/core';
import type { HaHostView } from '../api/ha-calls.ts';
import { ObjectLink } from '../components/object-link.tsx';
import { FencingBadge, HaHostStateBadge } from './ha-badges.tsx';
import { clock, formatSpan } from './ha-format.ts';
import { TableHead } from '../components/table-head.tsx';

const severity: Record<HaHostView['state'], number> = {
  failed: 0,
  isolated: 1,
  suspect: 2,
  healthy: 3,
  unprotected: 4,
  'vsphere-ha': 5,
};

export function HaHostsTable(props: { hosts: HaHostView[]; now: number }) {
  const { now } = props;
  const hosts = [...props.hosts].sort(
    (a, b) => severity[a.state] - severity[b.state] || a.name.localeCompare(b.name),
  );
  if (hosts.length === 0) return <Text c="dimmed">No hosts.</Text>;
  return (
    <Table aria-label="Hosts HA watches" striped>
      <TableHead
        columns={['Host', 'State', 'Since', 'Channel silent', 'Fencing', 'Storage heartbeat']}
      />
      <Table.Tbody>
        {hosts.map((host) => (
          <Table.Tr key={host.hostId} data-host={host.name}>
            <Table.Td>
              <ObjectLink id={host.hostId} name={host.name} />
            </Table.Td>
            <Table.Td>
              <Stack gap={2} align="flex-start">
                <HaHostStateBadge state={host.state} />
                {/* Why it is unprotected, or cannot be fenced. */}
                {host.reason && (
                  <Text size="xs" c="dimmed" maw={360}>
                    {host.reason}
                  </Text>
                )}
              </Stack>
            </Table.Td>
            <Table.Td>
              {host.since === null ? (
                '—'
              ) : (
                <Text size="sm" title={clock(host.since)}>
                  {formatSpan(now - host.since)} ago
                </Text>
              )}
            </Table.Td>
            <Table.Td>{host.silentMs === null ? 'no channel' : formatSpan(host.silentMs)}</Table.Td>
            <Table.Td>
              <FencingBadge fencing={host.fencing} />
            </Table.Td>
            <Table.Td>
              {host.storage ? (
                <Text
                  size="sm"
                  title={`Written ${clock(host.storage.writtenAt)} by the host's clock; read by Zenith ${formatSpan(now - host.storage.readAt)} ago`}
                >
                  #{host.storage.counter}, written {formatSpan(now - host.storage.writtenAt)} ago
                </Text>
              ) : (
                <Text size="sm" c="dimmed">
                  none read
                </Text>
              )}
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
