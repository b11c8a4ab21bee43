/** One VM: its facts, where it ran, the actions the role grants, and its serial console. */
import { Alert, Anchor, Button, Group, Paper, Stack, Table, Text, Title } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import type { LocationInterval, ManagedObject } from '../api/types.ts';
import { LocationHistory } from '../components/location-history.tsx';
import { PowerStateBadge } from '../components/power-state-badge.tsx';
import { SerialConsole } from '../components/serial-console.tsx';
import { VmActions } from '../components/vm-actions.tsx';
import { hrefOf } from '../hash-route.ts';
import { roleCan } from '../permissions.ts';

export function VmPage(props: {
  vmId: string;
  client: ApiClient;
  events: EventStream;
  role: string;
}) {
  const { vmId, client, events, role } = props;
  const [vm, setVm] = useState<ManagedObject | null>(null);
  const [history, setHistory] = useState<LocationInterval[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [consoleOpen, setConsoleOpen] = useState(false);

  const load = useCallback(
    async (signal?: AbortSignal) => {
      try {
        const [fresh, intervals] = await Promise.all([
          client.getVm(vmId, signal),
          client.locationHistory(vmId, signal),
        ]);
        setVm(fresh);
        setHistory(intervals);
        setError(null);
      } catch (failure) {
        if (signal?.aborted) return;
        setError(failure instanceof ApiError ? failure.reason : String(failure));
      }
    },
    [client, vmId],
  );

  useEffect(() => {
    const abort = new AbortController();
    void load(abort.signal);
    return () => abort.abort();
  }, [load]);

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
  return (
    <Stack>
      <Anchor href={hrefOf.inventory}>← All virtual machines</Anchor>
      <Group>
        <Title order={2}>{vm.name}</Title>
        <PowerStateBadge state={vm.facts['power.state']} />
      </Group>
      {roleCan(role, 'vm.power') && (
        <VmActions vmId={vm.id} vmName={vm.name} client={client} events={events} />
      )}
      <Paper withBorder p="md">
        <Title order={3} mb="sm">
          Serial console
        </Title>
        {roleCan(role, 'vm.console') ? (
          <Stack>
            <Button
              variant="default"
              w="fit-content"
              onClick={() => setConsoleOpen((open) => !open)}
            >
              {consoleOpen ? 'Close serial console' : 'Open serial console'}
            </Button>
            {consoleOpen && <SerialConsole vmId={vm.id} client={client} />}
          </Stack>
        ) : (
          <Text c="dimmed">Your role does not grant console access.</Text>
        )}
      </Paper>
      <Paper withBorder p="md">
        <Title order={3} mb="sm">
          Location history
        </Title>
        <LocationHistory intervals={history} />
      </Paper>
      <Paper withBorder p="md">
        <Title order={3} mb="sm">
          Facts
        </Title>
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
      </Paper>
    </Stack>
  );
}
