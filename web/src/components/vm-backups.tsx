/**
 * The VM's backups (the catalogue, GET /backups?vm=ID, newest first): when each was taken, full or
 * incremental, what it read and stored, and whether it is damaged. With backup.run, "Back up now"
 * into a chosen repository (the repositories are read with backup.read on everything); with
 * backup.restore, each backup restores as a new VM on a host, and each of its disks downloads as a
 * qcow2 or raw file. The list is read again when a task
 * on the VM ends, and when a verify or a restore ends (either may mark backups damaged).
 */
import { useInputState } from '@mantine/hooks';
import { Badge, Button, Group, NativeSelect, Stack, Table, Text } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import {
  backupRepositories,
  backupsOfVm,
  backUpVm,
  scopeOf,
  type BackupRepositoryView,
  type BackupView,
} from '../api/backup-calls.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { isTaskEnd } from '../api/events.ts';
import { reasonOf } from '../api/follow-task.ts';
import type { ManagedObject } from '../api/types.ts';
import { formatBytes } from '../pages/inventory-page.tsx';
import { BackupDownload } from './backup-download.tsx';
import { RestoreDialog } from './restore-dialog.tsx';
import { TaskRunStatus } from './task-run-status.tsx';
import { useTaskRunner } from './use-task-runner.ts';
import { TableHead } from './table-head.tsx';
import { useLiveLoad } from './use-live-load.ts';

/** A backup.create task's result (the contract leaves task results untyped). */
interface BackupResult {
  scope?: string;
  readBytes?: number;
  storedBytes?: number;
}

export function VmBackups(props: {
  vm: ManagedObject;
  client: ApiClient;
  events: EventStream;
  /** backup.run on the VM. */
  mayBackUp: boolean;
  /** backup.restore on the VM (the host is checked by the server). */
  mayRestore: boolean;
  /** backup.read on everything: the repositories to back up into can be listed. */
  mayReadRepositories: boolean;
}) {
  const { vm, client, events, mayBackUp, mayRestore, mayReadRepositories } = props;
  const vmId = vm.id;
  const present = vm.status === 'present';
  const [backups, setBackups] = useState<BackupView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [repositories, setRepositories] = useState<BackupRepositoryView[] | null>(null);
  const [repository, setRepository] = useInputState<string>('');
  const [restoring, setRestoring] = useState<BackupView | null>(null);
  const { run, start } = useTaskRunner(client, events);

  const load = useCallback(async () => {
    try {
      setBackups(await backupsOfVm(client, vmId));
      setError(null);
    } catch (failure) {
      setError(reasonOf(failure));
    }
  }, [client, vmId]);
  useLiveLoad(events, load, (event) => {
    if (!isTaskEnd(event)) return false;
    const { kind, targetId } = event.data;
    return targetId === vmId || kind === 'backup.verify' || kind === 'backup.restore';
  });

  const offerBackUp = mayBackUp && present && mayReadRepositories;
  useEffect(() => {
    if (!offerBackUp) return;
    const abort = new AbortController();
    backupRepositories(client, abort.signal)
      .then((found) => {
        setRepositories(found);
        setRepository((chosen) => chosen || (found[0]?.id ?? ''));
      })
      .catch((failure: unknown) => !abort.signal.aborted && setError(reasonOf(failure)));
    return () => abort.abort();
  }, [client, offerBackUp]);

  const backUp = async () => {
    if (!repository) return;
    await start('Back up', () => backUpVm(client, vmId, repository));
    await load();
  };
  const result = run?.state === 'succeeded' ? (run.task.result as BackupResult | null) : null;

  return (
    <Stack>
      {mayBackUp && present && !mayReadRepositories && (
        <Text c="dimmed" size="sm">
          Backing up here needs backup.read on every repository (to choose one).
        </Text>
      )}
      {offerBackUp && repositories?.length === 0 && (
        <Text c="dimmed" size="sm">
          No backup repository yet: an administrator adds one (API or `zenith backups repositories
          add`).
        </Text>
      )}
      {offerBackUp && repositories && repositories.length > 0 && (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void backUp();
          }}
        >
          <Group align="flex-end">
            <NativeSelect
              label="Repository"
              value={repository}
              data={repositories.map((r) => ({ value: r.id, label: r.name }))}
              onChange={setRepository}
            />
            <Button type="submit" disabled={!repository} loading={run?.state === 'pending'}>
              Back up now
            </Button>
          </Group>
        </form>
      )}
      <TaskRunStatus run={run} />
      {result?.scope && (
        <Text size="sm">
          Backup {result.scope}: read {formatBytes(result.readBytes)}, stored{' '}
          {formatBytes(result.storedBytes)}.
        </Text>
      )}
      {error && <Text c="red">{error}</Text>}
      {backups && backups.length === 0 && <Text c="dimmed">No backups.</Text>}
      {backups && backups.length > 0 && (
        <Table aria-label="Backups">
          <TableHead
            columns={[
              'Taken',
              'Scope',
              'Size',
              'Read',
              'Stored',
              'New / shared chunks',
              'State',
              mayRestore && 'Actions',
            ]}
          />
          <Table.Tbody>
            {backups.map((backup) => (
              <Table.Tr key={backup.id}>
                <Table.Td title={backup.id}>{new Date(backup.takenAt).toLocaleString()}</Table.Td>
                <Table.Td
                  title={
                    backup.quiesced
                      ? 'File systems frozen by the guest agent for the point in time'
                      : 'Not quiesced: crash-consistent, or the VM was stopped'
                  }
                >
                  {scopeOf(backup)}
                  {backup.quiesced && (
                    <Badge ml={4} size="xs" variant="light">
                      quiesced
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>{formatBytes(backup.sizeBytes)}</Table.Td>
                <Table.Td>{formatBytes(backup.readBytes)}</Table.Td>
                <Table.Td>{formatBytes(backup.storedBytes)}</Table.Td>
                <Table.Td>
                  {backup.newChunks} / {backup.sharedChunks}
                </Table.Td>
                <Table.Td>
                  {backup.state === 'damaged' ? (
                    <Stack gap={2}>
                      <Badge color="red" variant="light">
                        damaged
                      </Badge>
                      {backup.damage && <Text size="xs">{backup.damage}</Text>}
                    </Stack>
                  ) : (
                    <Badge color="green" variant="light">
                      ok
                    </Badge>
                  )}
                </Table.Td>
                {mayRestore && (
                  <Table.Td>
                    <Group gap="xs" wrap="nowrap">
                      <Button
                        size="xs"
                        variant="default"
                        disabled={backup.state === 'damaged'}
                        title={
                          backup.state === 'damaged'
                            ? `Damaged, not restored: ${backup.damage ?? 'verify found it'}`
                            : undefined
                        }
                        onClick={() => setRestoring(backup)}
                      >
                        Restore…
                      </Button>
                      <BackupDownload backup={backup} client={client} />
                    </Group>
                  </Table.Td>
                )}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {restoring && (
        <RestoreDialog
          vm={vm}
          backup={restoring}
          client={client}
          events={events}
          onClose={() => setRestoring(null)}
        />
      )}
    </Stack>
  );
}
