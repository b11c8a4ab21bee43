/**
 * Disaster recovery (`#/replication`, with replication.read on everything): the sites and their
 * hosts; every replicated VM with where its replica is, its current RPO against its target (red
 * when over), its points in time and the last one's age; and the recovery plans with their last
 * run — each VM's step, when it was up, the RTO and the data loss window. Read again on a
 * `replication.*` or `recovery.*` event (at most every 0.3 s) and every 5 s while the tab is
 * visible (the RPO grows with time). Plans are made and run with the API or the CLI
 * (docs/replication.md).
 */
import { useInputState } from '@mantine/hooks';
import { Badge, NativeSelect, Stack, Table, Text, Title } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import {
  recoveryPlans,
  replications,
  rpoReport,
  type RpoReportRow,
  sites,
  type RecoveryPlanView,
  type ReplicationView,
  type SiteView,
} from '../api/replication-calls.ts';
import { ErrorAlert } from '../components/error-alert.tsx';
import { TableHead } from '../components/table-head.tsx';
import { TimeSeriesChart } from '../components/time-series-chart.tsx';
import { formatBytes } from '../pages/inventory-page.tsx';

const pollMs = 5000;
const seconds = (value: number | null) => (value === null ? '–' : `${Math.round(value)} s`);
const time = (value: number | null) => (value === null ? '–' : new Date(value).toLocaleString());

function RpoBadge(props: { replication: ReplicationView }) {
  const { replication } = props;
  if (replication.state === 'recovered') return <Badge color="gray">recovered</Badge>;
  const over = replication.rpoExceeded;
  return (
    <Badge color={over ? 'red' : 'green'} aria-label={`RPO ${over ? 'over' : 'within'} target`}>
      {seconds(replication.currentRpoSeconds)} / {replication.rpoSeconds} s
    </Badge>
  );
}

function ReplicatedVms(props: { items: ReplicationView[] }) {
  if (props.items.length === 0) return <Text c="dimmed">No VM is replicated.</Text>;
  return (
    <Table striped aria-label="Replicated VMs">
      <TableHead
        columns={[
          'VM',
          'From',
          'Replica on',
          'State',
          'Mode',
          'RPO now / target',
          'Points',
          'Newest point',
        ]}
      />
      <Table.Tbody>
        {props.items.map((r) => {
          const ready = r.points.filter((p) => p.state === 'ready');
          return (
            <Table.Tr key={r.id}>
              <Table.Td>
                {r.vm.name}
                {r.createdBy.startsWith('policy:') ? (
                  <Text c="dimmed" size="xs">
                    by {r.createdBy.replace(':', ' ')}
                  </Text>
                ) : null}
              </Table.Td>
              <Table.Td>{r.sourceSite?.name ?? '–'}</Table.Td>
              <Table.Td>
                {r.targetHost.name}
                {r.targetSite ? ` (${r.targetSite.name})` : ''}
              </Table.Td>
              <Table.Td>
                {r.state}
                {r.lastCycleError ? (
                  <Text c="red" size="xs" title={r.lastCycleError.message}>
                    last cycle failed: {r.lastCycleError.code}
                  </Text>
                ) : null}
              </Table.Td>
              <Table.Td>
                {r.sync ? `sync: ${r.sync.state ?? 'first copy'}` : 'interval'}
                {r.sync?.error && r.sync.state !== 'mirroring' ? (
                  <Text c="orange" size="xs" title={r.sync.error.message}>
                    mirror: {r.sync.error.code}
                  </Text>
                ) : null}
              </Table.Td>
              <Table.Td>
                <RpoBadge replication={r} />
              </Table.Td>
              <Table.Td>{ready.length}</Table.Td>
              <Table.Td>
                {ready[0] ? `${time(ready[0].takenAt)} (${formatBytes(ready[0].readBytes)})` : '–'}
              </Table.Td>
            </Table.Tr>
          );
        })}
      </Table.Tbody>
    </Table>
  );
}

/**
 * One VM's RPO over time: just before each point was ready (the longest it had been since the
 * point before's data), against its target. Read again when the list of points changes.
 */
function RpoHistory(props: { client: ApiClient; items: ReplicationView[] }) {
  const { client, items } = props;
  const [vmId, setVmId] = useInputState<string | null>(null);
  const [rows, setRows] = useState<RpoReportRow[]>([]);
  const shown = items.find((r) => r.vm.id === vmId) ?? items[0];
  const newest = shown?.points[0]?.id;
  useEffect(() => {
    if (!shown) return;
    const abort = new AbortController();
    rpoReport(client, shown.vm.id, abort.signal)
      .then(setRows)
      .catch(() => undefined);
    return () => abort.abort();
  }, [client, shown?.vm.id, newest]);
  if (!shown) return null;
  const points = rows
    .filter((row) => row.rpoBeforeSeconds !== null)
    .map((row) => ({
      at: row.finishedAt,
      rpo: row.rpoBeforeSeconds!,
      target: row.rpoTargetSeconds,
    }));
  const span = points.length > 1 ? points.at(-1)!.at - points[0]!.at : 0;
  return (
    <Stack gap="xs" aria-label={`RPO of ${shown.vm.name} over time`}>
      <NativeSelect
        label="RPO over time of"
        value={shown.vm.id}
        onChange={setVmId}
        data={items.map((r) => ({ value: r.vm.id, label: r.vm.name }))}
        w={240}
      />
      {points.length === 0 ? (
        <Text c="dimmed">No point after the first yet.</Text>
      ) : (
        <TimeSeriesChart
          points={points}
          series={[
            { key: 'rpo', name: 'RPO just before each point', color: '#228be6' },
            { key: 'target', name: 'target', color: '#fa5252' },
          ]}
          unit={(value) => `${Math.round(value)} s`}
          spanMs={span}
        />
      )}
    </Stack>
  );
}

function Plans(props: { items: RecoveryPlanView[] }) {
  if (props.items.length === 0) return <Text c="dimmed">No recovery plan.</Text>;
  return (
    <Stack gap="md">
      {props.items.map((plan) => {
        const run = plan.lastRun;
        return (
          <Stack key={plan.id} gap={4} aria-label={`Recovery plan ${plan.name}`}>
            <Text fw={600}>
              {plan.name}: {plan.sourceSite.name} → {plan.targetSite.name}, {plan.groups.length}{' '}
              group{plan.groups.length === 1 ? '' : 's'}
            </Text>
            {run ? (
              <>
                <Text size="sm">
                  Last run: {run.operation} {run.state}, started {time(run.startedAt)}; RTO{' '}
                  {seconds(run.rtoSeconds)}, data loss window {seconds(run.dataLossSeconds)}
                  {run.error ? ` — ${run.error}` : ''}
                </Text>
                <Table aria-label={`Steps of ${plan.name}'s last run`}>
                  <TableHead columns={['Group', 'VM', 'Step', 'Host', 'Data taken', 'Up']} />
                  <Table.Tbody>
                    {run.vms.map((step) => (
                      <Table.Tr key={step.vm.id}>
                        <Table.Td>{step.group + 1}</Table.Td>
                        <Table.Td>{step.vm.name}</Table.Td>
                        <Table.Td>
                          {step.reason ? `${step.state}: ${step.reason}` : step.state}
                          {step.fenced ? ` (${step.fenced.host.name} fenced)` : ''}
                        </Table.Td>
                        <Table.Td>{step.host?.name ?? '–'}</Table.Td>
                        <Table.Td>{time(step.pointTakenAt)}</Table.Td>
                        <Table.Td>{time(step.upAt)}</Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </>
            ) : (
              <Text size="sm" c="dimmed">
                Never run.
              </Text>
            )}
          </Stack>
        );
      })}
    </Stack>
  );
}

export function ReplicationPage(props: { client: ApiClient; events: EventStream }) {
  const { client, events } = props;
  const [siteList, setSites] = useState<SiteView[] | null>(null);
  const [replicated, setReplicated] = useState<ReplicationView[] | null>(null);
  const [plans, setPlans] = useState<RecoveryPlanView[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const [s, r, p] = await Promise.all([
        sites(client),
        replications(client),
        recoveryPlans(client),
      ]);
      setSites(s);
      setReplicated(r);
      setPlans(p);
      setError(null);
    } catch (failure) {
      setError(reasonOf(failure));
    }
  }, [client]);

  useEffect(() => {
    void load();
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void load();
    }, pollMs);
    const unsubscribe = events.subscribeCoalesced(
      (event) => event.type.startsWith('replication.') || event.type.startsWith('recovery.'),
      () => void load(),
    );
    return () => {
      clearInterval(timer);
      unsubscribe();
    };
  }, [events, load]);

  return (
    <Stack gap="lg">
      <Title order={2}>Disaster recovery</Title>
      <ErrorAlert title="Could not read replication" error={error} />
      <Stack gap="xs">
        <Title order={3}>Sites</Title>
        {siteList && siteList.length === 0 ? (
          <Text c="dimmed">No site yet.</Text>
        ) : (
          <Table aria-label="Sites">
            <TableHead columns={['Site', 'Hosts']} />
            <Table.Tbody>
              {(siteList ?? []).map((site) => (
                <Table.Tr key={site.id}>
                  <Table.Td>{site.name}</Table.Td>
                  <Table.Td>{site.hosts.map((h) => h.name).join(', ')}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Stack>
      <Stack gap="xs">
        <Title order={3}>Protected VMs</Title>
        {replicated && <ReplicatedVms items={replicated} />}
        {replicated && <RpoHistory client={client} items={replicated} />}
      </Stack>
      <Stack gap="xs">
        <Title order={3}>Recovery plans</Title>
        {plans && <Plans items={plans} />}
      </Stack>
    </Stack>
  );
}
