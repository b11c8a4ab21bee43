/**
 * The VM's snapshots (read live from its hypervisor): take one, revert to one, delete one, the
 * last two after a confirmation. The list is read again when a task on the VM ends; a VM that is
 * gone (deleted, or missing from its host) has none to read.
 */
import { useInputState } from '@mantine/hooks';
import { Button, Group, Modal, Stack, Table, Text, TextInput } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import { deleteSnapshot, revertSnapshot, snapshotsOf, takeSnapshot } from '../api/vm-calls.ts';
import { isEvent } from '../api/events.ts';
import type { Snapshot } from '../api/vm-types.ts';
import { TaskRunStatus } from './task-run-status.tsx';
import { useTaskRunner } from './use-task-runner.ts';
import { TableHead } from './table-head.tsx';
import { DialogButtons } from './dialog-buttons.tsx';

type Confirming = { action: 'revert' | 'delete'; snapshot: Snapshot } | null;

export function VmSnapshots(props: {
  vmId: string;
  client: ApiClient;
  events: EventStream;
  mayChange: boolean;
  /** The VM is on a host (a deleted or missing VM has no snapshots to read). */
  present: boolean;
}) {
  const { vmId, client, events, mayChange, present } = props;
  const [snapshots, setSnapshots] = useState<Snapshot[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useInputState('');
  const [confirming, setConfirming] = useState<Confirming>(null);
  const { run, start } = useTaskRunner(client, events);

  const load = useCallback(async () => {
    if (!present) {
      setSnapshots([]);
      setError(null);
      return;
    }
    try {
      setSnapshots(await snapshotsOf(client, vmId));
      setError(null);
    } catch (failure) {
      setError(reasonOf(failure));
    }
  }, [client, vmId, present]);
  useEffect(() => {
    void load();
    return events.subscribe((event) => {
      // The VM's deletion ends before the page learns the VM is gone: nothing is left to read.
      if (isEvent(event, 'task.succeeded') && event.data.kind === 'vm.delete') {
        if (event.data.targetId === vmId) setSnapshots([]);
        return;
      }
      if (
        (isEvent(event, 'task.succeeded') || isEvent(event, 'task.failed')) &&
        event.data.targetId === vmId
      )
        void load();
    });
  }, [events, load, vmId]);

  const take = async () => {
    const chosen = name.trim();
    if (!chosen) return;
    if (await start('Snapshot', () => takeSnapshot(client, vmId, chosen))) setName('');
    await load();
  };
  const confirm = async () => {
    if (!confirming) return;
    const { action, snapshot } = confirming;
    setConfirming(null);
    await (action === 'revert'
      ? start(`Revert to ${snapshot.name}`, () => revertSnapshot(client, vmId, snapshot.id))
      : start(`Delete snapshot ${snapshot.name}`, () => deleteSnapshot(client, vmId, snapshot.id)));
    await load();
  };

  return (
    <Stack>
      {mayChange && present && (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void take();
          }}
        >
          <Group align="flex-end">
            <TextInput label="Snapshot name" maxLength={64} value={name} onChange={setName} />
            <Button type="submit" disabled={!name.trim()} loading={run?.state === 'pending'}>
              Take snapshot
            </Button>
          </Group>
        </form>
      )}
      <TaskRunStatus run={run} />
      {error && <Text c="red">{error}</Text>}
      {snapshots && snapshots.length === 0 && <Text c="dimmed">No snapshots.</Text>}
      {snapshots && snapshots.length > 0 && (
        <Table aria-label="Snapshots">
          <TableHead columns={['Name', 'Taken', 'Power state', mayChange && 'Actions']} />
          <Table.Tbody>
            {snapshots.map((snapshot) => (
              <Table.Tr key={snapshot.id}>
                <Table.Td>{snapshot.name}</Table.Td>
                <Table.Td>{new Date(snapshot.createdAt).toLocaleString()}</Table.Td>
                <Table.Td>{snapshot.powerState}</Table.Td>
                {mayChange && (
                  <Table.Td>
                    <Group gap="xs">
                      <Button
                        size="xs"
                        variant="default"
                        aria-label={`Revert to ${snapshot.name}`}
                        onClick={() => setConfirming({ action: 'revert', snapshot })}
                      >
                        Revert
                      </Button>
                      <Button
                        size="xs"
                        variant="outline"
                        color="red"
                        aria-label={`Delete snapshot ${snapshot.name}`}
                        onClick={() => setConfirming({ action: 'delete', snapshot })}
                      >
                        Delete
                      </Button>
                    </Group>
                  </Table.Td>
                )}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      <Modal
        opened={confirming !== null}
        onClose={() => setConfirming(null)}
        title={
          confirming?.action === 'revert'
            ? `Revert to ${confirming.snapshot.name}?`
            : `Delete snapshot ${confirming?.snapshot.name ?? ''}?`
        }
      >
        <Stack>
          <Text size="sm">
            {confirming?.action === 'revert'
              ? 'The VM returns to the state it had then; what happened since is lost.'
              : 'The snapshot is deleted for good.'}
          </Text>
          <DialogButtons onDismiss={() => setConfirming(null)} dismissLabel="Cancel">
            <Button color="red" onClick={() => void confirm()} data-autofocus>
              {confirming?.action === 'revert' ? 'Revert' : 'Delete'}
            </Button>
          </DialogButtons>
        </Stack>
      </Modal>
    </Stack>
  );
}
