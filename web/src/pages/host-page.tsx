/**
 * One host: its facts, its HA state and fencing, the physical machine under it (hardware, sensors, BMC actions), the VMs on
 * it, capacity against what they are given, and maintenance mode
 * (evacuate, with the migration plan and its progress live; exit). The VMs are one list
 * (`/vms?filter=location.hostId=ID`), fetched again when an inventory event touches one of them or
 * the host, so VMs leaving during an evacuation disappear as they go.
 */
import { Alert, Anchor, Grid, Group, Stack, Table, Text, Title } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { isInventoryEvent } from '../api/events.ts';
import type { ManagedObject, Page } from '../api/types.ts';
import { PowerStateBadge } from '../components/power-state-badge.tsx';
import { hrefOf } from '../hash-route.ts';
import { allocationOf, HostCapacity } from '../hosts/host-capacity.tsx';
import { EvacuationPanel } from '../hosts/evacuation-panel.tsx';
import { usePermissions } from '../permissions.ts';
import { formatBytes } from './inventory-page.tsx';
import { SimulatedBadge } from '../components/simulated-badge.tsx';
import { BareMetalBadge } from '../hosts/host-badges.tsx';
import { MachineSection } from '../hosts/machine-section.tsx';
import { HostHaBadges } from '../ha/host-ha-badges.tsx';
import { TableHead } from '../components/table-head.tsx';

/** A host holds a few hundred VMs at most; past this the page says it shows only the first ones. */
const vmLimit = 1000;

export function HostPage(props: { hostId: string; client: ApiClient; events: EventStream }) {
  const { hostId, client, events } = props;
  const [host, setHost] = useState<ManagedObject | null>(null);
  const [vms, setVms] = useState<ManagedObject[]>([]);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);
  const permissions = usePermissions(host ? [host.id] : []);
  const reload = useCallback(() => setGeneration((n) => n + 1), []);

  useEffect(() => {
    const abort = new AbortController();
    const id = encodeURIComponent(hostId);
    Promise.all([
      client.call<ManagedObject>('GET', `/hosts/${id}`, undefined, abort.signal),
      client.call<Page<ManagedObject>>(
        'GET',
        `/vms?limit=${vmLimit}&filter=status=present&filter=${encodeURIComponent(`location.hostId=${hostId}`)}`,
        undefined,
        abort.signal,
      ),
    ])
      .then(([fresh, page]) => {
        setHost(fresh);
        setVms(page.items);
        setMore(page.nextCursor !== null);
        setError(null);
      })
      .catch((failure: unknown) => {
        if (!abort.signal.aborted)
          setError(failure instanceof ApiError ? failure.reason : String(failure));
      });
    return () => abort.abort();
  }, [client, hostId, generation]);

  // Live: the host's own events, events of the VMs listed, and VMs arriving here (an inventory
  // event whose location names this host), at most one reload every 0.3 s.
  const listed = vms.map((vm) => vm.id).join(',');
  useEffect(() => {
    const ids = new Set(listed.split(','));
    const here = new Set([hostId, host?.id]);
    return events.subscribeCoalesced((event) => {
      const location =
        isInventoryEvent(event) && event.type !== 'inventory.synced'
          ? 'location' in event.data
            ? event.data.location
            : undefined
          : undefined;
      return (
        here.has(event.objectId ?? '') ||
        (event.type.startsWith('inventory.') && ids.has(event.objectId ?? '')) ||
        here.has(location?.hostId ?? '') ||
        here.has(location?.previousHostId ?? '') ||
        event.type === 'inventory.synced' ||
        (event.type === 'inventory.created' && event.data?.kind === 'vm')
      );
    }, reload);
  }, [events, host?.id, hostId, listed, reload]);

  if (error)
    return (
      <Alert color="red" role="alert" title="The host could not be loaded">
        {error}
      </Alert>
    );
  if (!host) return <Text>Loading…</Text>;
  const facts = Object.entries({ ...host.facts, ...host.computed, ...host.userFacts }).sort(
    ([a], [b]) => a.localeCompare(b),
  );
  return (
    <Stack>
      <Group>
        <Title order={2}>{host.name}</Title>
        <SimulatedBadge simulated={host.simulated} />
        <BareMetalBadge host={host} />
        <HostHaBadges hostId={host.id} client={client} events={events} />
      </Group>
      <Text c="dimmed">
        Host {host.id}
        {host.tags.length > 0 ? ` · ${host.tags.join(' ')}` : ''}
      </Text>
      <MachineSection
        host={host}
        client={client}
        events={events}
        mayPower={permissions.can('host.power', host.id)}
        mayLink={permissions.can('host.link', host.id)}
        onLinkChanged={reload}
      />
      <Title order={3}>Capacity and load</Title>
      <HostCapacity host={host} allocation={allocationOf(vms)} />
      <EvacuationPanel
        host={host}
        client={client}
        events={events}
        mayManage={permissions.can('host.maintenance', host.id)}
        onChanged={reload}
      />
      <Grid>
        <Grid.Col span={{ base: 12, lg: 7 }}>
          <Title order={3}>
            VMs on this host ({vms.length}
            {more ? '+' : ''})
          </Title>
          <Table aria-label="VMs on this host" striped>
            <TableHead columns={['Name', 'Power state', 'CPUs', 'Memory']} />
            <Table.Tbody>
              {vms.map((vm) => (
                <Table.Tr key={vm.id}>
                  <Table.Td>
                    <Anchor href={hrefOf.vm(vm.id)}>{vm.name}</Anchor>
                  </Table.Td>
                  <Table.Td>
                    <PowerStateBadge state={vm.facts['power.state']} />
                  </Table.Td>
                  <Table.Td>{String(vm.facts['cpu.count'] ?? '—')}</Table.Td>
                  <Table.Td>{formatBytes(vm.facts['memory.bytes'])}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          {vms.length === 0 && <Text c="dimmed">No VMs on this host.</Text>}
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 5 }}>
          <Title order={3}>Facts</Title>
          <Table aria-label="Host facts">
            <Table.Tbody>
              {facts.map(([key, value]) => (
                <Table.Tr key={key}>
                  <Table.Th scope="row">{key}</Table.Th>
                  {/* Machines' facts hold long lists (disks, memory modules) without spaces. */}
                  <Table.Td style={{ overflowWrap: 'anywhere' }}>{JSON.stringify(value)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Grid.Col>
      </Grid>
    </Stack>
  );
}
