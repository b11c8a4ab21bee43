/**
 * Restore a backup as a new, stopped VM (new UUID and MAC addresses) on a host the person picks
 * (the VM's own host first), under a new name — or over the VM itself, stopped, once its name is
 * typed to confirm that its disks are replaced; the task is followed and the VM linked.
 */
import {
  Alert,
  Anchor,
  Button,
  Group,
  Modal,
  NativeSelect,
  SegmentedControl,
  Stack,
  Text,
  TextInput,
} from '@mantine/core';
import { useEffect, useState } from 'react';
import { restoreBackup, type BackupView, type RestoreResult } from '../api/backup-calls.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import type { ManagedObject } from '../api/types.ts';
import { listHosts } from '../api/vm-calls.ts';
import { hrefOf } from '../hash-route.ts';
import { TaskRunStatus } from './task-run-status.tsx';
import { useTaskRunner } from './use-task-runner.ts';

export function RestoreDialog(props: {
  vm: ManagedObject;
  backup: BackupView;
  client: ApiClient;
  events: EventStream;
  onClose: () => void;
}) {
  const { vm, backup, client, events, onClose } = props;
  const [hosts, setHosts] = useState<ManagedObject[] | null>(null);
  const [hostId, setHostId] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState(`${backup.vmName}-restored`);
  const [mode, setMode] = useState<'new' | 'replace'>('new');
  const [confirmation, setConfirmation] = useState('');
  // Only the backup's own VM can be restored over, and only while it is stopped.
  const replaceable = vm.id === backup.vmId && vm.status === 'present';
  const stopped = vm.facts['power.state'] === 'stopped';
  const { run, start } = useTaskRunner(client, events);
  const result = run?.state === 'succeeded' ? (run.task.result as RestoreResult | null) : null;
  // Its host by id (the VM object is new on each of its inventory events: the choice stays).
  const ownHostId = vm.computed['location.hostId'];

  useEffect(() => {
    let current = true;
    listHosts(client)
      .then((all) => {
        if (!current) return;
        const present = all.filter((host) => host.status === 'present');
        setHosts(present);
        setHostId(present.find((host) => host.id === ownHostId)?.id ?? present[0]?.id ?? '');
      })
      .catch((failure: unknown) => current && setError(reasonOf(failure)));
    return () => {
      current = false;
    };
  }, [client, ownHostId]);

  const taken = new Date(backup.takenAt).toLocaleString();
  return (
    <Modal opened onClose={onClose} title={`Restore the backup of ${backup.vmName} taken ${taken}`}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void start('Restore', () =>
            restoreBackup(
              client,
              backup.id,
              mode === 'replace' ? { replace: vm.id } : { host: hostId, name: name.trim() },
            ),
          );
        }}
      >
        <Stack>
          {error && (
            <Alert color="red" role="alert" title="The hosts could not be listed">
              {error}
            </Alert>
          )}
          {replaceable && (
            <SegmentedControl
              value={mode}
              onChange={(value) => setMode(value === 'replace' ? 'replace' : 'new')}
              data={[
                { value: 'new', label: 'As a new VM' },
                { value: 'replace', label: `Over ${vm.name}` },
              ]}
            />
          )}
          {mode === 'replace' ? (
            <>
              <Text size="sm">
                {vm.name}&apos;s disks are replaced by the backup&apos;s, and its settings by those
                it had then; it keeps its name and identity. Its current disks are removed.
              </Text>
              {!stopped && (
                <Alert color="yellow" title={`${vm.name} is running`}>
                  Stop it first: its disks are not replaced while it runs.
                </Alert>
              )}
              <TextInput
                label={`Type ${vm.name} to confirm`}
                value={confirmation}
                onChange={(event) => setConfirmation(event.currentTarget.value)}
                autoComplete="off"
              />
            </>
          ) : (
            <>
              <NativeSelect
                label="Host"
                value={hostId}
                disabled={!hosts}
                data={(hosts ?? []).map((host) => ({ value: host.id, label: host.name }))}
                onChange={(event) => setHostId(event.currentTarget.value)}
              />
              <TextInput
                label="New VM name"
                required
                maxLength={63}
                value={name}
                onChange={(event) => setName(event.currentTarget.value)}
                data-autofocus
              />
            </>
          )}
          <TaskRunStatus run={run} />
          {result?.vmId && <Anchor href={hrefOf.vm(result.vmId)}>Open {result.name}</Anchor>}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Close
            </Button>
            <Button
              type="submit"
              loading={run?.state === 'pending'}
              {...(mode === 'replace' ? { color: 'red' } : {})}
              disabled={
                mode === 'replace' ? !stopped || confirmation !== vm.name : !hostId || !name.trim()
              }
            >
              {mode === 'replace' ? `Replace ${vm.name}` : 'Restore'}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
