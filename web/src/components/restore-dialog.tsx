/**
 * Restore a backup as a new, stopped VM (new UUID and MAC addresses) on a host the person picks
 * (the VM's own host first), under a new name — or over the VM itself, stopped, once its name is
 * typed to confirm that its disks are replaced — or one disk of it into the VM (stopped), added as
 * a new disk or over one of its disks (its name typed to confirm); the task is followed and the
 * VM linked.
 */
import { useInputState } from '@mantine/hooks';
import {
  Alert,
  Anchor,
  Button,
  Modal,
  NativeSelect,
  SegmentedControl,
  Stack,
  Text,
  TextInput,
} from '@mantine/core';
import { useEffect, useState } from 'react';
import {
  restoreBackup,
  restoreBackupDisk,
  type BackupView,
  type DiskRestoreResult,
  type RestoreResult,
} from '../api/backup-calls.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import type { ManagedObject } from '../api/types.ts';
import { listHosts } from '../api/vm-calls.ts';
import { hrefOf } from '../hash-route.ts';
import { formatBytes } from '../pages/inventory-page.tsx';
import { TaskRunStatus } from './task-run-status.tsx';
import { useTaskRunner } from './use-task-runner.ts';
import { ErrorAlert } from './error-alert.tsx';
import { NameConfirmation } from './name-confirmation.tsx';
import { DialogButtons } from './dialog-buttons.tsx';

export function RestoreDialog(props: {
  vm: ManagedObject;
  backup: BackupView;
  client: ApiClient;
  events: EventStream;
  onClose: () => void;
}) {
  const { vm, backup, client, events, onClose } = props;
  const [hosts, setHosts] = useState<ManagedObject[] | null>(null);
  const [hostId, setHostId] = useInputState('');
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useInputState(`${backup.vmName}-restored`);
  const [mode, setMode] = useState<'new' | 'replace' | 'disk'>('new');
  const [confirmation, setConfirmation] = useState('');
  // One disk: which of the backup's, and into the VM as a new disk ('add') or over one of its own.
  const [diskId, setDiskId] = useInputState(backup.disks[0]?.diskId ?? 'disk0');
  const [into, setInto] = useState('add');
  const chosen = backup.disks.find((disk) => disk.diskId === diskId);
  // Only the backup's own VM can be restored over, and only while it is stopped.
  const replaceable = vm.id === backup.vmId && vm.status === 'present';
  const stopped = vm.facts['power.state'] === 'stopped';
  const { run, start } = useTaskRunner(client, events);
  const result =
    run?.state === 'succeeded'
      ? (run.task.result as RestoreResult | DiskRestoreResult | null)
      : null;
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
          void start(mode === 'disk' ? 'Restore disk' : 'Restore', () =>
            mode === 'disk'
              ? restoreBackupDisk(client, backup.id, diskId, {
                  vm: vm.id,
                  ...(into === 'add' ? {} : { replace: into }),
                })
              : restoreBackup(
                  client,
                  backup.id,
                  mode === 'replace' ? { replace: vm.id } : { host: hostId, name: name.trim() },
                ),
          );
        }}
      >
        <Stack>
          <ErrorAlert title="The hosts could not be listed" error={error} />
          {vm.status === 'present' && (
            <SegmentedControl
              value={mode}
              onChange={(value) => setMode(value === 'replace' || value === 'disk' ? value : 'new')}
              data={[
                { value: 'new', label: 'As a new VM' },
                ...(replaceable ? [{ value: 'replace', label: `Over ${vm.name}` }] : []),
                { value: 'disk', label: 'One disk' },
              ]}
            />
          )}
          {mode === 'disk' ? (
            <>
              <NativeSelect
                label="Disk of the backup"
                value={diskId}
                data={backup.disks.map((disk) => ({
                  value: disk.diskId,
                  label: `${disk.diskId} (${formatBytes(disk.capacityBytes)})`,
                }))}
                onChange={setDiskId}
              />
              <NativeSelect
                label={`Into ${vm.name}`}
                value={into}
                data={[
                  { value: 'add', label: 'As a new disk' },
                  ...backup.disks.map((disk) => ({
                    value: disk.diskId,
                    label: `Over its ${disk.diskId}`,
                  })),
                ]}
                onChange={(event) => {
                  setInto(event.currentTarget.value);
                  setConfirmation('');
                }}
              />
              <Text size="sm">
                {into === 'add'
                  ? `${vm.name} gets a new disk holding ${diskId} as it was backed up.`
                  : `The contents of ${vm.name}'s ${into} are replaced by ${diskId} as it was backed up, and its current image is removed.`}{' '}
                The restored disk has the backup&apos;s capacity
                {chosen ? ` (${formatBytes(chosen.capacityBytes)})` : ''}.
              </Text>
              {!stopped && (
                <Alert color="yellow" title={`${vm.name} is running`}>
                  Stop it first: no disk is restored into a running VM.
                </Alert>
              )}
              {into !== 'add' && (
                <NameConfirmation name={vm.name} value={confirmation} onChange={setConfirmation} />
              )}
            </>
          ) : mode === 'replace' ? (
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
              <NameConfirmation name={vm.name} value={confirmation} onChange={setConfirmation} />
            </>
          ) : (
            <>
              <NativeSelect
                label="Host"
                value={hostId}
                disabled={!hosts}
                data={(hosts ?? []).map((host) => ({ value: host.id, label: host.name }))}
                onChange={setHostId}
              />
              <TextInput
                label="New VM name"
                required
                maxLength={63}
                value={name}
                onChange={setName}
                data-autofocus
              />
            </>
          )}
          <TaskRunStatus run={run} />
          {result?.vmId && <Anchor href={hrefOf.vm(result.vmId)}>Open {result.name}</Anchor>}
          <DialogButtons onDismiss={onClose}>
            <Button
              type="submit"
              loading={run?.state === 'pending'}
              {...(mode === 'replace' || (mode === 'disk' && into !== 'add')
                ? { color: 'red' }
                : {})}
              disabled={
                mode === 'disk'
                  ? !stopped || (into !== 'add' && confirmation !== vm.name)
                  : mode === 'replace'
                    ? !stopped || confirmation !== vm.name
                    : !hostId || !name.trim()
              }
            >
              {mode === 'disk'
                ? into === 'add'
                  ? `Add ${diskId} to ${vm.name}`
                  : `Replace ${into}`
                : mode === 'replace'
                  ? `Replace ${vm.name}`
                  : 'Restore'}
            </Button>
          </DialogButtons>
        </Stack>
      </form>
    </Modal>
  );
}
