/**
 * The failovers, newest first, each opening onto its detail: when the host failed, was declared
 * failed and was fenced (and how), then each VM's restart in the order they were started —
 * priority, order group, state, the host it went to, how long after the failure it ran, and why
 * one waits. The newest is open; others open on demand.
 */
import { Accordion, Alert, Group, Stack, Table, Text } from '@mantine/core';
import { useState } from 'react';
import type { FailoverView } from '../api/ha-calls.ts';
import { ObjectLink } from '../components/object-link.tsx';
import { FailoverStateBadge, fencingLabel } from './ha-badges.tsx';
import { after, clock } from './ha-format.ts';
import { TableHead } from '../components/table-head.tsx';

export function FailoverList(props: { failovers: FailoverView[] }) {
  const { failovers } = props;
  // Null until the person opens or closes one: until then the newest is open.
  const [open, setOpen] = useState<string[] | null>(null);
  if (failovers.length === 0) return <Text c="dimmed">No failover yet.</Text>;
  return (
    <Accordion
      multiple
      variant="separated"
      value={open ?? [failovers[0]!.id]}
      onChange={setOpen}
      aria-label="Failovers"
    >
      {failovers.map((failover) => (
        <Accordion.Item key={failover.id} value={failover.id} data-failover={failover.id}>
          <Accordion.Control>
            <FailoverSummary failover={failover} />
          </Accordion.Control>
          <Accordion.Panel>
            <FailoverDetail failover={failover} />
          </Accordion.Panel>
        </Accordion.Item>
      ))}
    </Accordion>
  );
}

function FailoverSummary(props: { failover: FailoverView }) {
  const { failover } = props;
  const running = failover.restarts.filter((r) => r.state === 'running').length;
  return (
    <Group gap="sm">
      <Text fw={600}>{failover.hostName}</Text>
      <Text size="sm">failed {clock(failover.failedAt)}</Text>
      <FailoverStateBadge state={failover.state} />
      <Text size="sm">fencing {fencingLabel(failover.fenceMethod)}</Text>
      <Text size="sm">
        {running}/{failover.restarts.length} running
      </Text>
    </Group>
  );
}

function FailoverDetail(props: { failover: FailoverView }) {
  const { failover } = props;
  const t0 = failover.failedAt;
  return (
    <Stack>
      {failover.error && (
        <Alert
          color={failover.state === 'done' ? 'gray' : 'orange'}
          title="Why it stopped or waits"
        >
          {failover.error}
        </Alert>
      )}
      <Table aria-label={`Fencing of ${failover.hostName}`} maw={560}>
        <Table.Tbody>
          <Table.Tr>
            <Table.Th scope="row">Host stopped answering</Table.Th>
            <Table.Td>
              {clock(t0)} (<ObjectLink id={failover.hostId} name={failover.hostName} />)
            </Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th scope="row">Declared failed</Table.Th>
            <Table.Td>{after(failover.detectedAt, t0)}</Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th scope="row">Fenced</Table.Th>
            <Table.Td>
              {failover.fenceMethod
                ? `${after(failover.fencedAt, t0)}, ${fencingLabel(failover.fenceMethod)}`
                : 'not yet'}
            </Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th scope="row">Finished</Table.Th>
            <Table.Td>{after(failover.finishedAt, t0)}</Table.Td>
          </Table.Tr>
        </Table.Tbody>
      </Table>
      <Text size="sm" c="dimmed">
        In start order; times count from when {failover.hostName} stopped answering.
      </Text>
      <RestartTable failover={failover} />
    </Stack>
  );
}

function RestartTable(props: { failover: FailoverView }) {
  const { failover } = props;
  if (failover.restarts.length === 0)
    return <Text c="dimmed">No protected VM was running on {failover.hostName}.</Text>;
  return (
    <Table aria-label={`Restarts of ${failover.hostName}'s VMs`} striped>
      <TableHead
        columns={[
          '#',
          'VM',
          'Priority',
          'Order group',
          'State',
          'To host',
          'Started',
          'Running',
          'Attempts',
          'Why waiting',
        ]}
      />
      <Table.Tbody>
        {failover.restarts.map((restart, index) => (
          <Table.Tr key={restart.vmId} data-vm={restart.vmName}>
            <Table.Td>{index + 1}</Table.Td>
            <Table.Td>
              <ObjectLink id={restart.vmId} name={restart.vmName} />
            </Table.Td>
            <Table.Td>{restart.priority}</Table.Td>
            <Table.Td>{restart.restartOrder}</Table.Td>
            <Table.Td>
              <FailoverStateBadge state={restart.state} />
            </Table.Td>
            <Table.Td>
              <ObjectLink id={restart.toHostId} name={restart.toHostName} />
            </Table.Td>
            <Table.Td>{after(restart.startedAt, failover.failedAt)}</Table.Td>
            <Table.Td
              title={restart.runningAt === null ? undefined : `Running ${clock(restart.runningAt)}`}
            >
              {after(restart.runningAt, failover.failedAt)}
            </Table.Td>
            <Table.Td>{restart.attempts}</Table.Td>
            <Table.Td>
              <Text size="sm" maw={360}>
                {restart.reason ?? '—'}
              </Text>
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
