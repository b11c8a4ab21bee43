/**
 * Backup jobs on the backups page: each job with its repository, scope, schedule (in its time
 * zone), next run, last run and retention; with backup.run, Run now (the run is followed: one
 * line per VM); with backup.manage, enable or disable, remove, New job (a dialog: name,
 * repository, selector, scope, schedule, time zone, retention, backups at once per host) and Edit
 * (the same dialog over the job's settings; the name stays, retention rules the dialog does not
 * show are kept). The server still decides: a job wider than the person's own backup.run is
 * refused, and the refusal shows.
 */
import { useInputState } from '@mantine/hooks';
import {
  Alert,
  Badge,
  Button,
  Group,
  Modal,
  NativeSelect,
  NumberInput,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useCallback, useState } from 'react';
import {
  backupJobs,
  createBackupJob,
  deleteBackupJob,
  runBackupJob,
  setBackupJobEnabled,
  updateBackupJob,
  type BackupJobView,
  type BackupRepositoryView,
  type JobRunResult,
} from '../api/backup-calls.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { isTaskEnd } from '../api/events.ts';
import { reasonOf } from '../api/follow-task.ts';
import { TaskRunStatus } from '../components/task-run-status.tsx';
import { useTaskRunner } from '../components/use-task-runner.ts';
import { usePermissions } from '../permissions.ts';
import { TableHead } from '../components/table-head.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';
import { useLiveLoad } from '../components/use-live-load.ts';
import { DialogButtons } from '../components/dialog-buttons.tsx';

const when = (at: number | null | undefined) => (at ? new Date(at).toLocaleString() : '—');

function retentionText(job: BackupJobView): string {
  if (!job.retention) return 'everything';
  const keys = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
  return keys
    .filter((key) => job.retention![key] !== undefined)
    .map((key) => `${key} ${String(job.retention![key])}`)
    .join(', ');
}

export function BackupJobs(props: {
  client: ApiClient;
  events: EventStream;
  repositories: BackupRepositoryView[];
}) {
  const { client, events, repositories } = props;
  const permissions = usePermissions();
  const mayRun = permissions.can('backup.run');
  const mayManage = permissions.can('backup.manage');
  const [jobs, setJobs] = useState<BackupJobView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  /** The dialog open: a new job (null) or the job edited. */
  const [editing, setEditing] = useState<BackupJobView | null | undefined>(undefined);
  const { run, start } = useTaskRunner(client, events);

  const load = useCallback(async () => {
    try {
      setJobs(await backupJobs(client));
      setError(null);
    } catch (failure) {
      setError(reasonOf(failure));
    }
  }, [client]);
  useLiveLoad(events, load, (event) => isTaskEnd(event) && event.data.kind === 'backup.job');

  const act = async (work: () => Promise<unknown>) => {
    try {
      await work();
      setError(null);
    } catch (failure) {
      setError(reasonOf(failure));
    }
    await load();
  };
  const result = run?.state === 'succeeded' ? (run.task.result as JobRunResult | null) : null;

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={3}>Backup jobs</Title>
        {mayManage && repositories.length > 0 && (
          <Button size="xs" onClick={() => setEditing(null)}>
            New job
          </Button>
        )}
      </Group>
      <ErrorAlert title="Backup jobs" error={error} />
      <TaskRunStatus run={run} />
      {result && (
        <Text size="sm" aria-label="Run result">
          {result.vms
            .map((vm) => `${vm.vmName}: ${vm.state}${vm.scope ? ` (${vm.scope})` : ''}`)
            .join('; ') || 'no VM selected'}
          {result.pruned.length > 0 ? `; ${result.pruned.length} backups pruned` : ''}
        </Text>
      )}
      {jobs && jobs.length === 0 && (
        <Text c="dimmed">No backup job yet: a job backs up the VMs it selects on a schedule.</Text>
      )}
      {jobs && jobs.length > 0 && (
        <Table aria-label="Backup jobs">
          <TableHead
            columns={[
              'Name',
              'Repository',
              'Selects',
              'Schedule',
              'Next run',
              'Last run',
              'Keeps',
              'Restore tests',
              (mayRun || mayManage) && 'Actions',
            ]}
          />
          <Table.Tbody>
            {jobs.map((job) => (
              <Table.Tr key={job.id}>
                <Table.Td>
                  {job.name}{' '}
                  {!job.enabled && (
                    <Badge color="gray" variant="light">
                      disabled
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>{job.repository.name}</Table.Td>
                <Table.Td>
                  <Text size="sm">{job.selector ?? 'every VM'}</Text>
                  <Text size="xs" c="dimmed">
                    in {job.scope ? `${job.scope.kind} ${job.scope.name}` : 'everything'}
                  </Text>
                </Table.Td>
                <Table.Td>
                  {job.schedule ? `${job.schedule} (${job.timeZone})` : 'on demand'}
                </Table.Td>
                <Table.Td>{job.enabled ? when(job.nextRuns[0]) : '—'}</Table.Td>
                <Table.Td>
                  {job.lastRun ? (
                    <Badge
                      color={
                        job.lastRun.state === 'succeeded'
                          ? 'green'
                          : job.lastRun.state === 'failed'
                            ? 'red'
                            : 'blue'
                      }
                      variant="light"
                    >
                      {job.lastRun.state}
                    </Badge>
                  ) : (
                    '—'
                  )}{' '}
                  {job.lastRun && when(job.lastRun.endedAt ?? job.lastRun.startedAt)}
                </Table.Td>
                <Table.Td>{retentionText(job)}</Table.Td>
                <Table.Td>{job.restoreTest ? `on ${job.restoreTest.host.name}` : 'none'}</Table.Td>
                {(mayRun || mayManage) && (
                  <Table.Td>
                    <Group gap="xs" wrap="nowrap">
                      {mayRun && (
                        <Button
                          size="xs"
                          variant="default"
                          aria-label={`Run ${job.name} now`}
                          loading={run?.state === 'pending' && run.label === `Run ${job.name}`}
                          onClick={() =>
                            void start(`Run ${job.name}`, () => runBackupJob(client, job.id))
                          }
                        >
                          Run now
                        </Button>
                      )}
                      {mayManage && (
                        <Button
                          size="xs"
                          variant="default"
                          aria-label={`Edit ${job.name}`}
                          onClick={() => setEditing(job)}
                        >
                          Edit
                        </Button>
                      )}
                      {mayManage && (
                        <Button
                          size="xs"
                          variant="default"
                          aria-label={`${job.enabled ? 'Disable' : 'Enable'} ${job.name}`}
                          onClick={() =>
                            void act(() => setBackupJobEnabled(client, job.id, !job.enabled))
                          }
                        >
                          {job.enabled ? 'Disable' : 'Enable'}
                        </Button>
                      )}
                      {mayManage && (
                        <Button
                          size="xs"
                          color="red"
                          variant="light"
                          aria-label={`Remove ${job.name}`}
                          onClick={() => {
                            if (window.confirm(`Remove backup job ${job.name}? Its backups stay.`))
                              void act(() => deleteBackupJob(client, job.id));
                          }}
                        >
                          Remove
                        </Button>
                      )}
                    </Group>
                  </Table.Td>
                )}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {editing !== undefined && (
        <JobDialog
          client={client}
          repositories={repositories}
          job={editing}
          onClose={() => setEditing(undefined)}
          onMade={() => {
            setEditing(undefined);
            void load();
          }}
        />
      )}
    </Stack>
  );
}

/** Making a job (`job` null), or changing one: the same fields, the name fixed. */
function JobDialog(props: {
  client: ApiClient;
  repositories: BackupRepositoryView[];
  job: BackupJobView | null;
  onClose: () => void;
  onMade: () => void;
}) {
  const { client, repositories, job, onClose, onMade } = props;
  const [name, setName] = useInputState(job?.name ?? '');
  const [repository, setRepository] = useInputState(
    job?.repository.id ?? repositories[0]?.id ?? '',
  );
  const [selector, setSelector] = useInputState(job?.selector ?? '');
  const [scope, setScope] = useInputState(job?.scope?.name ?? '');
  const [schedule, setSchedule] = useInputState(job ? (job.schedule ?? '') : '0 2 * * *');
  const [timeZone, setTimeZone] = useInputState(
    job?.timeZone ?? (Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'),
  );
  const [keepLast, setKeepLast] = useState<number | string>(job ? (job.retention?.last ?? '') : 7);
  const [keepDaily, setKeepDaily] = useState<number | string>(job?.retention?.daily ?? '');
  const [perHost, setPerHost] = useState<number | string>(job?.concurrency.perHost ?? 1);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const count = (value: number | string) => (typeof value === 'number' ? value : undefined);

  const submit = async () => {
    setBusy(true);
    try {
      const last = count(keepLast);
      const daily = count(keepDaily);
      // Rules the dialog does not show (weekly, monthly, …) are kept as they are.
      const { last: _last, daily: _daily, ...kept } = job?.retention ?? {};
      const rules = {
        ...kept,
        ...(last !== undefined ? { last } : {}),
        ...(daily !== undefined ? { daily } : {}),
      };
      const settings = {
        repository,
        selector: selector.trim() || null,
        // The job's own scope, unchanged, goes by id (a name may stand for more than one object).
        scope: job?.scope && scope.trim() === job.scope.name ? job.scope.id : scope.trim() || null,
        schedule: schedule.trim() || null,
        timeZone: timeZone.trim() || 'UTC',
        retention: Object.keys(rules).some((key) => key !== 'timeZone') ? rules : null,
        ...(typeof perHost === 'number' ? { concurrency: { perHost } } : {}),
      };
      if (job) await updateBackupJob(client, job.id, settings);
      else await createBackupJob(client, { name: name.trim(), ...settings });
      onMade();
    } catch (failure) {
      setError(reasonOf(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal opened onClose={onClose} title={job ? `Edit ${job.name}` : 'New backup job'}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void submit();
        }}
      >
        <Stack>
          {error && (
            <Alert
              color="red"
              role="alert"
              title={job ? 'The job was not changed' : 'The job was not made'}
            >
              {error}
            </Alert>
          )}
          <TextInput
            label="Name"
            required
            maxLength={63}
            value={name}
            disabled={job !== null}
            onChange={setName}
            data-autofocus
          />
          <NativeSelect
            label="Repository"
            value={repository}
            data={repositories.map((r) => ({ value: r.id, label: r.name }))}
            onChange={setRepository}
          />
          <TextInput
            label="Selector"
            description="A condition on the VM's facts, e.g. 'env:prod' in vm.tags; empty: every VM in scope"
            value={selector}
            onChange={setSelector}
          />
          <TextInput
            label="Scope"
            description="The object (name or id) whose VMs the job reaches; empty: everything"
            value={scope}
            onChange={setScope}
          />
          <Group grow>
            <TextInput
              label="Schedule (cron)"
              description="minute hour day month weekday; empty: on demand"
              value={schedule}
              onChange={setSchedule}
            />
            <TextInput label="Time zone" value={timeZone} onChange={setTimeZone} />
          </Group>
          <Group grow>
            <NumberInput label="Keep last" min={0} value={keepLast} onChange={setKeepLast} />
            <NumberInput label="Keep daily" min={0} value={keepDaily} onChange={setKeepDaily} />
            <NumberInput
              label="At once per host"
              min={1}
              max={64}
              value={perHost}
              onChange={setPerHost}
            />
          </Group>
          <DialogButtons onDismiss={onClose} dismissLabel="Cancel">
            <Button type="submit" loading={busy} disabled={!name.trim() || !repository}>
              {job ? 'Save' : 'Make the job'}
            </Button>
          </DialogButtons>
        </Stack>
      </form>
    </Modal>
  );
}
