/**
 * One VM: its state, its HA protection, and the actions the identity may perform and its connection supports, its tasks,
 * snapshots, backups, where it ran (a timeline), consoles (serial and graphical), metrics, cost and facts. The
 * page follows the event stream: the VM is read again on each of its inventory events.
 */
import {
  Alert,
  Anchor,
  Button,
  Group,
  Paper,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Title,
} from '@mantine/core';
import { Suspense, useCallback, useEffect, useState, type ReactNode } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import type { LocationInterval, ManagedObject } from '../api/types.ts';
import { vmCapabilities } from '../api/vm-calls.ts';
import { LocationTimeline } from '../components/location-timeline.tsx';
import { PowerStateBadge } from '../components/power-state-badge.tsx';
import { SerialConsole } from '../components/serial-console.tsx';
import { VmActions } from '../components/vm-actions.tsx';
import { VmBackups } from '../components/vm-backups.tsx';
import { VmCost } from '../components/vm-cost.tsx';
import { VmSnapshots } from '../components/vm-snapshots.tsx';
import { VmTasks } from '../components/vm-tasks.tsx';
import { hrefOf } from '../hash-route.ts';
import { usePermissions, type Permission } from '../permissions.ts';
import { SimulatedBadge } from '../components/simulated-badge.tsx';
import { VmProtection } from '../ha/vm-protection.tsx';
import { lazyChunk } from '../components/lazy-chunk.ts';

// The chart library and noVNC are loaded when first shown: the VM list does not wait for them.
const MetricsCharts = lazyChunk(
  () => import('../components/metrics-charts.tsx'),
  (m) => m.MetricsCharts,
);
const VncConsole = lazyChunk(
  () => import('../components/vnc-console.tsx'),
  (m) => m.VncConsole,
);

export function VmPage(props: { vmId: string; client: ApiClient; events: EventStream }) {
  const { vmId, client, events } = props;
  const [vm, setVm] = useState<ManagedObject | null>(null);
  const [history, setHistory] = useState<LocationInterval[]>([]);
  const [capabilities, setCapabilities] = useState<ReadonlySet<string> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [openConsole, setOpenConsole] = useState<'serial' | 'vnc' | null>(null);
  const [now, setNow] = useState(() => Date.now());
  // What this identity may do on this VM: its role and every binding that reaches the VM (a
  // custom role on its cluster or a resource group), asked once for the page.
  const permissions = usePermissions([vmId]);
  const can = (permission: Permission) => permissions.can(permission, vmId);

  const load = useCallback(
    async (signal?: AbortSignal) => {
      try {
        const [fresh, intervals] = await Promise.all([
          client.getVm(vmId, signal),
          client.locationHistory(vmId, signal),
        ]);
        setVm(fresh);
        setHistory(intervals);
        setNow(Date.now());
        setError(null);
      } catch (failure) {
        if (signal?.aborted) return;
        setError(reasonOf(failure));
      }
    },
    [client, vmId],
  );

  useEffect(() => {
    const abort = new AbortController();
    void load(abort.signal);
    // Unknown capabilities (a disconnected connection) offer what the role grants; the server
    // still refuses with its reason.
    vmCapabilities(client, vmId)
      .then((answer) => !abort.signal.aborted && setCapabilities(new Set(answer.capabilities)))
      .catch(() => undefined);
    return () => abort.abort();
  }, [client, load, vmId]);

  useEffect(
    () =>
      events.subscribe((event) => {
        if (event.type.startsWith('inventory.') && event.objectId === vm?.id) void load();
      }),
    [events, load, vm?.id],
  );

  if (error && !vm)
    return (
      <Alert color="red" role="alert" title="The VM could not be loaded">
        {error}
      </Alert>
    );
  if (!vm) return <Text>Loading…</Text>;

  const facts = Object.entries({ ...vm.facts, ...vm.computed, ...vm.userFacts }).sort(([a], [b]) =>
    a.localeCompare(b),
  );
  // The graphical console exists where the VM was made with one (QEMU: console.vnc).
  const supportsVnc =
    (capabilities === null || capabilities.has('vm.console')) && vm.facts['console.vnc'] !== false;
  const toggle = (kind: 'serial' | 'vnc') =>
    setOpenConsole((open) => (open === kind ? null : kind));
  return (
    <Stack>
      <Anchor href={hrefOf.inventory}>← All virtual machines</Anchor>
      <Group>
        <Title order={2}>{vm.name}</Title>
        <SimulatedBadge simulated={vm.simulated} />
        <PowerStateBadge state={vm.facts['power.state']} />
        <Text c="dimmed" size="sm">
          on {String(vm.computed['location.hostName'] ?? 'no host')}
        </Text>
      </Group>
      <VmProtection
        vmId={vm.id}
        client={client}
        events={events}
        changed={`${String(vm.facts['power.state'])}@${String(vm.computed['location.hostId'])}`}
        present={vm.status === 'present'}
      />
      <VmActions vm={vm} client={client} events={events} can={can} capabilities={capabilities} />
      <SimpleGrid cols={{ base: 1, xl: 2 }}>
        <VmSection title="Tasks">
          <VmTasks vmId={vm.id} client={client} events={events} />
        </VmSection>
        <VmSection title="Location history">
          <LocationTimeline intervals={history} now={now} />
        </VmSection>
      </SimpleGrid>
      <VmSection title="Consoles">
        {can('vm.console') ? (
          <Stack>
            <Group>
              <Button variant="default" onClick={() => toggle('serial')}>
                {openConsole === 'serial' ? 'Close serial console' : 'Open serial console'}
              </Button>
              {supportsVnc && (
                <Button variant="default" onClick={() => toggle('vnc')}>
                  {openConsole === 'vnc' ? 'Close graphical console' : 'Open graphical console'}
                </Button>
              )}
            </Group>
            {openConsole === 'serial' && <SerialConsole vmId={vm.id} client={client} />}
            {openConsole === 'vnc' && (
              <Suspense fallback={<Text c="dimmed">Loading the graphical console…</Text>}>
                <VncConsole vmId={vm.id} client={client} />
              </Suspense>
            )}
          </Stack>
        ) : (
          <Text c="dimmed">You may not open this VM's consoles.</Text>
        )}
      </VmSection>
      <VmSection title="Snapshots">
        <VmSnapshots
          vmId={vm.id}
          client={client}
          events={events}
          mayChange={can('vm.snapshot') && (capabilities?.has('vm.snapshot') ?? true)}
          present={vm.status === 'present'}
        />
      </VmSection>
      {can('backup.read') && (
        <VmSection title="Backups">
          <VmBackups
            vm={vm}
            client={client}
            events={events}
            mayBackUp={can('backup.run') && (capabilities?.has('vm.backup') ?? true)}
            mayRestore={can('backup.restore')}
            mayReadRepositories={permissions.can('backup.read')}
          />
        </VmSection>
      )}
      <VmSection title="Metrics">
        <Suspense fallback={<Text c="dimmed">Loading metrics…</Text>}>
          <MetricsCharts vmId={vm.id} client={client} />
        </Suspense>
      </VmSection>
      {can('accounting.read') && (
        <VmSection title="Cost">
          <VmCost
            vmId={vm.id}
            client={client}
            changed={`${String(vm.facts['power.state'])}@${history.length}@${String(vm.computed['location.hostId'])}`}
          />
        </VmSection>
      )}
      <VmSection title="Facts">
        <Table aria-label="Facts">
          <Table.Tbody>
            {facts.map(([key, value]) => (
              <Table.Tr key={key}>
                <Table.Th scope="row">{key}</Table.Th>
                <Table.Td>{value === null ? '—' : String(value)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </VmSection>
    </Stack>
  );
}

/** One bordered section of the VM page under its heading. */
function VmSection(props: { title: string; children: ReactNode }) {
  return (
    <Paper withBorder p="md">
      <Title order={3} mb="sm">
        {props.title}
      </Title>
      {props.children}
    </Paper>
  );
}
