/**
 * High availability (`#/ha`): every host HA watches with its state and fencing, how many VMs are
 * protected, unprotected, restarting or waiting with the VMs themselves (filterable), and the
 * failovers with each VM's restart. Live: an `ha.*` event reads everything again (at most every
 * 0.3 s); the host figures (channel silence, heartbeats) are read again every 5 s while the tab is
 * visible, and the VM list when a VM is created or deleted or the counts no longer match it.
 */
import { Paper, SimpleGrid, Stack, Text, Title, UnstyledButton } from '@mantine/core';
import { useCallback, useEffect, useRef, useState } from 'react';
import {
  failovers as listFailovers,
  haStatusOf,
  haVms,
  type FailoverView,
  type HaStatus,
  type HaVmView,
} from '../api/ha-calls.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import { FailoverList } from '../ha/failover-list.tsx';
import { HaHostsTable } from '../ha/ha-hosts-table.tsx';
import { VsphereHaClusters } from '../ha/vsphere-ha-clusters.tsx';
import {
  filterVms,
  haVmStates,
  HaVmFilterBar,
  HaVmsTable,
  type VmFilter,
} from '../ha/ha-vms-table.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';

const pollMs = 5000;
const vmStates = haVmStates;
/** A state's count in GET /ha's answer, and its words on its card. */
const countKey = (state: HaVmView['state']) =>
  state === 'vsphere-ha' ? 'vsphereHa' : state === 'monitoring-limit' ? 'monitoringLimit' : state;
const countLabel = (state: HaVmView['state']) =>
  state === 'vsphere-ha'
    ? 'by vSphere HA'
    : state === 'monitoring-limit'
      ? 'at the restart limit'
      : state;

function countsOf(vms: HaVmView[]): HaStatus['vms'] {
  const count = (state: HaVmView['state']) => vms.filter((vm) => vm.state === state).length;
  return {
    protected: count('protected'),
    unprotected: count('unprotected'),
    restarting: count('restarting'),
    waiting: count('waiting'),
    vsphereHa: count('vsphere-ha'),
    monitoringLimit: count('monitoring-limit'),
  };
}

export function HaPage(props: { client: ApiClient; events: EventStream }) {
  const { client, events } = props;
  const [status, setStatus] = useState<HaStatus | null>(null);
  const [vms, setVms] = useState<HaVmView[] | null>(null);
  const [history, setHistory] = useState<FailoverView[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const [filter, setFilter] = useState<VmFilter>({ state: '', priority: '', text: '' });
  const vmsRef = useRef<HaVmView[] | null>(null);
  vmsRef.current = vms;

  const fail = useCallback((failure: unknown) => setError(reasonOf(failure)), []);
  const loadVms = useCallback(() => haVms(client).then(setVms).catch(fail), [client, fail]);
  const loadStatus = useCallback(
    () =>
      haStatusOf(client)
        .then((fresh) => {
          setStatus(fresh);
          setNow(Date.now());
          setError(null);
          // The counts moved without an HA event (a VM described, a policy changed).
          const known = vmsRef.current;
          if (known && JSON.stringify(countsOf(known)) !== JSON.stringify(fresh.vms))
            void loadVms();
        })
        .catch(fail),
    [client, fail, loadVms],
  );
  const loadFailovers = useCallback(
    () => listFailovers(client).then(setHistory).catch(fail),
    [client, fail],
  );
  const loadAll = useCallback(
    () => Promise.all([loadStatus(), loadVms(), loadFailovers()]),
    [loadFailovers, loadStatus, loadVms],
  );

  useEffect(() => {
    void loadAll();
  }, [loadAll]);

  // The slow poll: silence and heartbeat figures move every second without any event. A failover
  // under way changes steps (starting) that no event announces, so it is read again too.
  const unfinished = history.some((f) => f.finishedAt === null);
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState !== 'visible') return;
      void loadStatus();
      if (unfinished) void loadFailovers();
    }, pollMs);
    return () => clearInterval(timer);
  }, [loadFailovers, loadStatus, unfinished]);

  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const later = (load: () => unknown) => {
      timer ??= setTimeout(() => {
        timer = null;
        load();
      }, 300);
    };
    const unsubscribe = events.subscribe((event) => {
      if (event.type.startsWith('ha.')) later(loadAll);
      else if (
        (event.type === 'inventory.created' || event.type === 'inventory.deleted') &&
        event.data?.kind === 'vm'
      )
        later(loadVms);
    });
    return () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
    };
  }, [events, loadAll, loadVms]);

  return (
    <Stack>
      <Title order={2}>High availability</Title>
      <ErrorAlert title="Could not be loaded" error={error} />
      <Paper withBorder p="md" component="section" aria-labelledby="ha-hosts">
        <Title order={3} id="ha-hosts" mb="sm">
          Hosts
        </Title>
        {status ? <HaHostsTable hosts={status.hosts} now={now} /> : <Text>Loading…</Text>}
      </Paper>
      {status && status.vsphereClusters.length > 0 && (
        <Paper withBorder p="md" component="section" aria-labelledby="ha-vsphere">
          <Title order={3} id="ha-vsphere" mb="sm">
            vSphere clusters
          </Title>
          <VsphereHaClusters clusters={status.vsphereClusters} />
        </Paper>
      )}
      <Paper withBorder p="md" component="section" aria-labelledby="ha-vms">
        <Title order={3} id="ha-vms" mb="sm">
          Virtual machines
        </Title>
        <Stack>
          <SimpleGrid cols={{ base: 2, md: 6 }}>
            {vmStates.map((state) => (
              <UnstyledButton
                key={state}
                onClick={() => setFilter({ ...filter, state: filter.state === state ? '' : state })}
                aria-pressed={filter.state === state}
                title={`Show only the ${state} VMs (again: all)`}
              >
                {/* One line of text, so that its accessible name reads as it looks: "2 protected". */}
                <Paper
                  component="span"
                  display="block"
                  withBorder
                  p="sm"
                  {...(filter.state === state ? { bg: 'blue.0' } : {})}
                >
                  <Text span size="xl" fw={700} data-testid={`ha-count-${state}`}>
                    {status?.vms[countKey(state)] ?? '…'}
                  </Text>{' '}
                  <Text span size="sm">
                    {countLabel(state)}
                  </Text>
                </Paper>
              </UnstyledButton>
            ))}
          </SimpleGrid>
          <HaVmFilterBar filter={filter} onChange={setFilter} />
          {vms ? (
            <HaVmsTable vms={filterVms(vms, filter)} hosts={status?.hosts ?? []} />
          ) : (
            <Text>Loading…</Text>
          )}
        </Stack>
      </Paper>
      <Paper withBorder p="md" component="section" aria-labelledby="ha-failovers">
        <Title order={3} id="ha-failovers" mb="sm">
          Failovers
        </Title>
        <FailoverList failovers={history} />
      </Paper>
    </Stack>
  );
}
