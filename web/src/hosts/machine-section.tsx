/**
 * The physical machine under a host, on the host's page: shown for a machine (a host a redfish or
 * ipmi connection discovered) and for the hypervisor host linked to one (GET /hosts/ID/machine).
 * Its hardware, power, health and identify light, its BMC, the link (the hypervisor host on it, or
 * bare metal, and how they were linked; linking and unlinking by hand), the virtual CD, live
 * sensors, their history with the energy drawn, and the BMC actions.
 * Read again when an inventory event names the machine or its host (a poll that read another power
 * state) and when an action ends.
 */
import { Alert, Anchor, Grid, Group, Stack, Text, Title } from '@mantine/core';
import { Suspense, useCallback, useEffect, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import { machineOf, type MachineView } from '../api/machine-calls.ts';
import type { ManagedObject } from '../api/types.ts';
import { hrefOf } from '../hash-route.ts';
import {
  BareMetalBadge,
  MachineHealthBadge,
  MachineIdentifyBadge,
  MachinePowerBadge,
} from './host-badges.tsx';
import { MachineActions } from './machine-actions.tsx';
import { MachineHardware } from './machine-hardware.tsx';
import { MachineLinkActions } from './machine-link-actions.tsx';
import { MachineMedia } from './machine-media.tsx';
import { MachineSensors } from './machine-sensors.tsx';
import { lazyChunk } from '../components/lazy-chunk.ts';

// The chart library is loaded when a machine is first shown: other host pages do not wait for it.
const MachineSensorHistory = lazyChunk(
  () => import('./machine-sensor-history.tsx'),
  (m) => m.MachineSensorHistory,
);

const linkedHow: Record<NonNullable<MachineView['link']>['how'], string> = {
  smbiosUuid: 'the same SMBIOS UUID',
  serial: 'the same serial number',
  mac: 'a NIC MAC address they share',
  manual: 'hand',
};

/** Does the host have a machine to ask about? A BMC's host, or a host linked to one. */
export function hasMachine(host: ManagedObject): boolean {
  return (
    host.facts['bmc.protocol'] !== undefined || typeof host.computed['machine.id'] === 'string'
  );
}

function LinkLine(props: { view: MachineView; pageHostId: string; hostName: string | null }) {
  const { view, pageHostId, hostName } = props;
  const { link } = view;
  const how = link
    ? ` — linked by ${linkedHow[link.how]}${
        link.linkedBy === 'system' ? ', found by Zenith' : `, by ${link.linkedBy}`
      }, ${new Date(link.at).toLocaleString()}`
    : '';
  if (view.machine.id !== pageHostId)
    return (
      <Text data-testid="machine-link">
        Runs on machine <Anchor href={hrefOf.host(view.machine.id)}>{view.machine.name}</Anchor>
        {how}
      </Text>
    );
  if (view.hostId)
    return (
      <Text data-testid="machine-link">
        Runs hypervisor host{' '}
        <Anchor href={hrefOf.host(view.hostId)}>{hostName ?? view.hostId}</Anchor>
        {how}
      </Text>
    );
  return (
    <Text data-testid="machine-link">
      Bare metal: no hypervisor host Zenith manages runs on it{how}.
    </Text>
  );
}

export function MachineSection(props: {
  host: ManagedObject;
  client: ApiClient;
  events: EventStream;
  mayPower: boolean;
  mayLink: boolean;
  /** A link was made or undone: the host's own computed facts changed (no inventory event says so). */
  onLinkChanged: () => void;
}) {
  const { host, client, events, mayPower, mayLink, onLinkChanged } = props;
  const [view, setView] = useState<MachineView | 'no-bmc' | null>(null);
  const [hostName, setHostName] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);
  const reload = useCallback(() => setGeneration((n) => n + 1), []);
  const wanted = hasMachine(host);

  useEffect(() => {
    if (!wanted) return;
    const abort = new AbortController();
    machineOf(client, host.id, abort.signal)
      .then(async (fresh) => {
        setView(fresh);
        setError(null);
        // On the machine's page, the hypervisor host on it is named, not just its id.
        if (fresh.hostId && fresh.hostId !== host.id) {
          const linked = await client.call<ManagedObject>(
            'GET',
            `/hosts/${encodeURIComponent(fresh.hostId)}`,
            undefined,
            abort.signal,
          );
          setHostName(linked.name);
        }
      })
      .catch((failure: unknown) => {
        if (abort.signal.aborted) return;
        if (failure instanceof ApiError && failure.code === 'ZEN_NO_BMC') setView('no-bmc');
        else setError(reasonOf(failure));
      });
    return () => abort.abort();
  }, [client, host.id, wanted, generation]);

  // Live: the machine's and its host's inventory events (power read by a poll, a new link).
  const machineId = view && view !== 'no-bmc' ? view.machine.id : null;
  const linkedId = view && view !== 'no-bmc' ? view.hostId : null;
  useEffect(() => {
    if (!wanted) return;
    const watched = new Set([host.id, machineId, linkedId].filter(Boolean));
    return events.subscribeCoalesced(
      (event) => event.type.startsWith('inventory.') && watched.has(event.objectId ?? null),
      reload,
    );
  }, [events, host.id, machineId, linkedId, wanted, reload]);

  if (!wanted) return null;
  if (view === 'no-bmc')
    return (
      <Text c="dimmed" size="sm">
        Machine: no BMC known for this host.
      </Text>
    );
  if (error)
    return (
      <Alert color="red" role="alert" title="The machine could not be read">
        {error}
      </Alert>
    );
  if (!view) return <Text size="sm">Loading the machine…</Text>;
  const { machine } = view;
  const onPage = machine.id === host.id;
  const hostLabel = onPage ? host.name : `${host.name} (machine ${machine.name})`;
  // What the machine's action and media controls act on, and what they do once a task ends.
  const machineTasks = {
    hostId: host.id,
    hostLabel,
    client,
    events,
    mayPower,
    capabilities: view.capabilities,
    onTaskEnded: reload,
  };
  return (
    <Stack component="section" aria-label="Machine" gap="sm">
      <Group gap="sm">
        <Title order={3}>Machine</Title>
        <MachinePowerBadge power={machine.facts['hardware.power']} />
        <MachineHealthBadge health={machine.facts['hardware.health']} />
        <MachineIdentifyBadge
          identify={machine.facts['bmc.identify']}
          source={machine.facts['bmc.identifySource']}
        />
        <BareMetalBadge host={machine} />
      </Group>
      <Group gap="sm">
        <LinkLine view={view} pageHostId={host.id} hostName={hostName} />
        <MachineLinkActions
          view={view}
          pageHostId={host.id}
          linkedHostName={view.hostId === host.id ? host.name : hostName}
          client={client}
          mayLink={mayLink}
          onChanged={() => {
            reload();
            onLinkChanged();
          }}
        />
      </Group>
      <Text size="sm">
        BMC: {String(machine.facts['bmc.protocol'] ?? '—')} at{' '}
        <Text span ff="monospace" size="sm">
          {String(machine.facts['bmc.address'] ?? '—')}
        </Text>
      </Text>
      <MachineActions {...machineTasks} identify={machine.facts['bmc.identify']} />
      <MachineMedia {...machineTasks} machine={machine} />
      <Grid>
        <Grid.Col span={{ base: 12, lg: 7 }}>
          <Title order={4}>Hardware</Title>
          <MachineHardware machine={machine} />
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 5 }}>
          <MachineSensors hostId={host.id} client={client} />
        </Grid.Col>
      </Grid>
      <Suspense fallback={<Text c="dimmed">Loading the sensor history…</Text>}>
        <MachineSensorHistory hostId={host.id} client={client} />
      </Suspense>
    </Stack>
  );
}
