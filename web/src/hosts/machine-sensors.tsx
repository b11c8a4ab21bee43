/**
 * The machine's sensors as its BMC reads them now (GET /hosts/ID/sensors): temperatures, fans and
 * power draw in a small table, read again on "Refresh" and every 15 s while the tab is visible.
 * Each read asks the BMC, so a hidden tab asks nothing. No history: these are readings, not a
 * series.
 */
import { Button, Group, Table, Text, Title } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import { reasonOf } from '../api/follow-task.ts';
import { sensorsOf, type MachineSensor } from '../api/machine-calls.ts';
import { TableHead } from '../components/table-head.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';

const refreshEveryMs = 15_000;

const kindLabels: Record<MachineSensor['kind'], string> = {
  temperature: 'Temperature',
  fan: 'Fan',
  power: 'Power draw',
};

/** Redfish's units as a person writes them. */
function reading(sensor: MachineSensor): string {
  const value = Number.isInteger(sensor.value) ? String(sensor.value) : sensor.value.toFixed(1);
  if (sensor.unit === 'Cel') return `${value} °C`;
  return `${value} ${sensor.unit}`;
}

export function MachineSensors(props: { hostId: string; client: ApiClient }) {
  const { hostId, client } = props;
  const [sensors, setSensors] = useState<MachineSensor[] | null>(null);
  const [readAt, setReadAt] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const read = useCallback(
    async (signal?: AbortSignal) => {
      setBusy(true);
      try {
        const fresh = await sensorsOf(client, hostId, signal);
        setSensors(fresh);
        setReadAt(Date.now());
        setError(null);
      } catch (failure) {
        if (!signal?.aborted) setError(reasonOf(failure));
      } finally {
        if (!signal?.aborted) setBusy(false);
      }
    },
    [client, hostId],
  );

  useEffect(() => {
    const abort = new AbortController();
    void read(abort.signal);
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void read(abort.signal);
    }, refreshEveryMs);
    return () => {
      abort.abort();
      clearInterval(timer);
    };
  }, [read]);

  const order = (sensor: MachineSensor) => Object.keys(kindLabels).indexOf(sensor.kind);
  const sorted = [...(sensors ?? [])].sort(
    (a, b) => order(a) - order(b) || a.name.localeCompare(b.name),
  );
  return (
    <section aria-label="Sensors">
      <Group justify="space-between" align="center">
        <Title order={4}>Sensors</Title>
        <Group gap="xs">
          {readAt !== null && (
            <Text size="xs" c="dimmed">
              read {new Date(readAt).toLocaleTimeString()}
            </Text>
          )}
          <Button size="xs" variant="default" loading={busy} onClick={() => void read()}>
            Refresh sensors
          </Button>
        </Group>
      </Group>
      <ErrorAlert title="The sensors could not be read" mt="xs" error={error} />
      {sensors && sensors.length === 0 && <Text c="dimmed">The BMC reports no sensors.</Text>}
      {sorted.length > 0 && (
        <Table aria-label="Sensor readings" striped>
          <TableHead columns={['Sensor', 'Kind', 'Reading']} />
          <Table.Tbody>
            {sorted.map((sensor) => (
              <Table.Tr key={`${sensor.kind}:${sensor.name}`}>
                <Table.Td>{sensor.name}</Table.Td>
                <Table.Td>{kindLabels[sensor.kind]}</Table.Td>
                <Table.Td>{reading(sensor)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </section>
  );
}
