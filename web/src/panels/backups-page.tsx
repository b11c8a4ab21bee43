/**
 * Backup repositories (`#/backups`, with backup.read on everything): each repository with its
 * path, whether it is encrypted and how many backups it holds, and its usage read from its files
 * (GET /backup-repositories/ID: stored and logical bytes, the deduplication ratio, free space).
 * Its verify and garbage collection schedules (GET …/schedules)
 * with their next slot and last run. With backup.manage, Verify re-reads every chunk as a task,
 * followed here. Read again when a
 * backup task ends. Repositories are added with the API or the CLI (docs/backup.md). Below them,
 * the backup jobs (backup-jobs.tsx).
 */
import { Badge, Button, Stack, Table, Text, Title } from '@mantine/core';
import { useCallback, useState } from 'react';
import {
  backupRepositories,
  backupRepositoryUsage,
  repositorySchedules,
  verifyBackupRepository,
  type BackupRepositoryUsageView,
  type BackupRepositoryView,
  type ScheduleView,
  type VerifyResult,
} from '../api/backup-calls.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { isTaskEnd } from '../api/events.ts';
import { reasonOf } from '../api/follow-task.ts';
import { TaskRunStatus } from '../components/task-run-status.tsx';
import { BackupJobs } from './backup-jobs.tsx';
import { useTaskRunner } from '../components/use-task-runner.ts';
import { formatBytes } from '../pages/inventory-page.tsx';
import { usePermissions } from '../permissions.ts';
import { TableHead } from '../components/table-head.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';
import { useLiveLoad } from '../components/use-live-load.ts';

type Usage = BackupRepositoryUsageView['usage'];
/** A repository's usage, or why its files could not be read. */
type UsageOf = Record<string, Usage | { failure: string }>;
/** A repository's schedules (verify, garbage collection): null where it runs on demand only. */
type SchedulesOf = Record<string, { verify: ScheduleView | null; gc: ScheduleView | null }>;

/** "0 3 * * 0 (Europe/Paris), next …, last succeeded", or "on demand". */
function scheduleText(schedule: ScheduleView | null): string {
  if (!schedule) return 'on demand';
  const next = schedule.nextRuns[0];
  return [
    `${schedule.schedule} (${schedule.timeZone})`,
    schedule.enabled ? null : 'disabled',
    next ? `next ${new Date(next).toLocaleString()}` : null,
    schedule.lastRun ? `last ${schedule.lastRun.state}` : null,
  ]
    .filter((part) => part !== null)
    .join(', ');
}

export function BackupsPage(props: { client: ApiClient; events: EventStream }) {
  const { client, events } = props;
  const mayVerify = usePermissions().can('backup.manage');
  const [repositories, setRepositories] = useState<BackupRepositoryView[] | null>(null);
  const [usage, setUsage] = useState<UsageOf>({});
  const [schedules, setSchedules] = useState<SchedulesOf>({});
  const [error, setError] = useState<string | null>(null);
  const { run, start } = useTaskRunner(client, events);

  const load = useCallback(async () => {
    try {
      const found = await backupRepositories(client);
      setRepositories(found);
      setError(null);
      const read = await Promise.all(
        found.map(async (repository) => {
          try {
            return [repository.id, (await backupRepositoryUsage(client, repository.id)).usage];
          } catch (failure) {
            return [repository.id, { failure: reasonOf(failure) }];
          }
        }),
      );
      setUsage(Object.fromEntries(read) as UsageOf);
      const planned = await Promise.all(
        found.map(async (repository) => {
          const set = await repositorySchedules(client, repository.id).catch(() => []);
          const of = (work: ScheduleView['work']) =>
            set.find((schedule) => schedule.work === work) ?? null;
          return [repository.id, { verify: of('verify'), gc: of('garbage-collect') }];
        }),
      );
      setSchedules(Object.fromEntries(planned) as SchedulesOf);
    } catch (failure) {
      setError(reasonOf(failure));
    }
  }, [client]);
  useLiveLoad(events, load, (event) => isTaskEnd(event) && event.data.kind.startsWith('backup.'));

  const verify = async (repository: BackupRepositoryView) => {
    await start(`Verify ${repository.name}`, () => verifyBackupRepository(client, repository.id));
    await load();
  };
  const report = run?.state === 'succeeded' ? (run.task.result as VerifyResult | null) : null;

  return (
    <Stack>
      <Title order={2}>Backup repositories</Title>
      <ErrorAlert title="The repositories could not be read" error={error} />
      <TaskRunStatus run={run} />
      {report && (
        <Text size="sm">
          {report.checkedChunks} chunks of {report.checkedBackups} backups read:{' '}
          {report.damagedChunks.length === 0
            ? 'none damaged.'
            : `${report.damagedChunks.length} damaged, ${report.damaged.length} backups marked damaged.`}
        </Text>
      )}
      {repositories && repositories.length === 0 && (
        <Text c="dimmed">
          No backup repository yet: one is added with the API or `zenith backups repositories add`.
        </Text>
      )}
      {repositories && repositories.length > 0 && (
        <Table aria-label="Backup repositories">
          <TableHead
            columns={[
              'Name',
              'Path',
              'Encrypted',
              'Backups',
              'Stored',
              'Logical',
              'Dedup ratio',
              'Free space',
              'Schedules',
              mayVerify && 'Actions',
            ]}
          />
          <Table.Tbody>
            {repositories.map((repository) => {
              const used = usage[repository.id];
              return (
                <Table.Tr key={repository.id}>
                  <Table.Td>{repository.name}</Table.Td>
                  <Table.Td style={{ wordBreak: 'break-all' }}>{repository.path}</Table.Td>
                  <Table.Td>
                    {repository.encrypted ? (
                      <Badge color="teal" variant="light">
                        encrypted
                      </Badge>
                    ) : (
                      'no'
                    )}
                  </Table.Td>
                  <Table.Td>{repository.backups}</Table.Td>
                  {used && 'failure' in used ? (
                    <Table.Td colSpan={4}>
                      <Text c="red" size="sm">
                        {used.failure}
                      </Text>
                    </Table.Td>
                  ) : (
                    <>
                      <Table.Td>{used ? formatBytes(used.storedBytes) : '…'}</Table.Td>
                      <Table.Td>{used ? formatBytes(used.logicalBytes) : '…'}</Table.Td>
                      <Table.Td>
                        {used ? (used.dedupRatio === null ? '—' : `${used.dedupRatio}×`) : '…'}
                      </Table.Td>
                      <Table.Td>
                        {used
                          ? `${formatBytes(used.filesystem.freeBytes)} of ${formatBytes(used.filesystem.totalBytes)}`
                          : '…'}
                      </Table.Td>
                    </>
                  )}
                  <Table.Td>
                    <Text size="sm">
                      Verify:{' '}
                      {schedules[repository.id]
                        ? scheduleText(schedules[repository.id]!.verify)
                        : '…'}
                    </Text>
                    <Text size="sm">
                      Garbage collection:{' '}
                      {schedules[repository.id] ? scheduleText(schedules[repository.id]!.gc) : '…'}
                    </Text>
                  </Table.Td>
                  {mayVerify && (
                    <Table.Td>
                      <Button
                        size="xs"
                        variant="default"
                        aria-label={`Verify ${repository.name}`}
                        loading={
                          run?.state === 'pending' && run.label === `Verify ${repository.name}`
                        }
                        onClick={() => void verify(repository)}
                      >
                        Verify
                      </Button>
                    </Table.Td>
                  )}
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      )}
      {repositories && <BackupJobs client={client} events={events} repositories={repositories} />}
    </Stack>
  );
}
