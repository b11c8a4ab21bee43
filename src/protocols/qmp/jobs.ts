/**
 * QEMU's generic jobs (qapi/job.json): a command such as `snapshot-save`
 * starts a job and returns at once; the job's progress shows in
 * `JOB_STATUS_CHANGE` events and `query-jobs`. A job that does not dismiss
 * itself stays `concluded` (with QEMU's error, if it failed) until
 * `job-dismiss`. runJob does all of that and turns a failure into
 * QMP_JOB_FAILED.
 */
import { systemClock, type Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { QmpClient } from './client.js';
import type { QmpArgs, QmpCommandName, QmpJobInfo } from './commands.js';
import type { JsonObject } from './messages.js';

/** Commands that start a job with an id of the caller's choosing. */
export type QmpJobCommand = {
  [K in QmpCommandName]: QmpArgs<K> extends { 'job-id': string } ? K : never;
}[QmpCommandName];

export interface QmpJobOptions {
  clock?: Clock;
  /** How long the job may take. Default 10 minutes. */
  timeoutMs?: number;
  /** `query-jobs` is also polled this often, in case an event is lost. Default 1 s. */
  pollIntervalMs?: number;
}

/**
 * Starts a job and resolves with its final JobInfo once it concluded and was
 * dismissed. Rejects with QMP_JOB_FAILED when QEMU reports an error, with
 * QMP_TIMEOUT when it does not conclude in time (the job is left to QEMU),
 * and with QMP_CLOSED when the connection closes meanwhile.
 */
export function runJob<K extends QmpJobCommand>(
  client: QmpClient,
  command: K,
  args: QmpArgs<K>,
  options: QmpJobOptions = {},
): Promise<QmpJobInfo> {
  const id = (args as { 'job-id': string })['job-id'];
  return followJob(client, command, id, options, async () => {
    await client.executeRaw(command, args as unknown as JsonObject);
  });
}

/**
 * Waits for a job started before (by an earlier call that gave up waiting, or on another
 * connection) as runJob waits for its own: its final JobInfo once concluded and dismissed.
 */
export function awaitJob(
  client: QmpClient,
  command: QmpJobCommand,
  id: string,
  options: QmpJobOptions = {},
): Promise<QmpJobInfo> {
  return followJob(client, command, id, options, async () => undefined);
}

async function followJob(
  client: QmpClient,
  command: QmpJobCommand,
  id: string,
  options: QmpJobOptions,
  start: () => Promise<void>,
): Promise<QmpJobInfo> {
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? 10 * 60_000;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  let concluded = false;
  let wake: (() => void) | undefined;
  // Subscribe before the command: the job may conclude before its reply is read.
  const unsubscribe = client.on('JOB_STATUS_CHANGE', (event) => {
    if (event.data.id !== id) return;
    if (event.data.status === 'concluded' || event.data.status === 'null') {
      concluded = true;
      wake?.();
    }
  });
  const wakeUp = () => wake?.();
  client.closed.then(wakeUp, wakeUp);
  try {
    await start();
    const deadline = clock.now() + timeoutMs;
    for (;;) {
      const job = (await client.execute('query-jobs')).find((j) => j.id === id);
      if (!job)
        throw new ZenithError(
          'QMP_JOB_FAILED',
          `the ${command} job ${id} vanished before it was read`,
          {
            jobId: id,
            command,
          },
        );
      if (job.status === 'concluded') {
        await client.execute('job-dismiss', { id });
        if (job.error !== undefined)
          throw new ZenithError('QMP_JOB_FAILED', `${command} failed: ${job.error}`, {
            jobId: id,
            type: job.type,
            command,
            error: job.error,
          });
        return job;
      }
      if (clock.now() >= deadline)
        throw new ZenithError(
          'QMP_TIMEOUT',
          `the ${command} job ${id} did not conclude within ${timeoutMs} ms`,
          {
            jobId: id,
            command,
            status: job.status,
            timeoutMs,
          },
        );
      if (!concluded) await nextWake(clock, pollIntervalMs, (resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    unsubscribe();
  }
}

/** Resolves when woken or after the poll interval, whichever comes first. */
async function nextWake(
  clock: Clock,
  ms: number,
  register: (resolve: () => void) => void,
): Promise<void> {
  const timer = new AbortController();
  try {
    await new Promise<void>((resolve) => {
      register(resolve);
      clock.sleep(ms, timer.signal).then(resolve, () => undefined);
    });
  } finally {
    timer.abort();
  }
}
