/**
 * Backup jobs: which VMs (a selector in the policy language, over the job's scope), into which
 * repository, when (a cron pattern in a time zone, through the scheduler, and on demand), how many
 * at once (per host, per repository), and what to keep (retention, applied to the job's own
 * backups after each run).
 *
 * A job acts as a service identity of its own, bound to the role `backup-job` on its scope: the
 * binding, not the selector, decides what it may reach, and it is made only for someone who holds
 * backup.run there themselves, so a job never reaches further than the one who made it. Its runs
 * and the backups they make are tasks owned by that identity, audited under its name.
 *
 * A run is a task (`backup.job`). Each backup it asks for is recorded with the backup's task in the
 * transaction that writes that task, so a run resumed after a crash waits for the backups it asked
 * for and asks only for the others: no VM is backed up twice by one run.
 */
import { Type, type Static } from 'typebox';
import type { Clock } from '../../core/clock.js';
import type { ActionContext } from '../../hypervisors/driver-types.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Logger } from '../../core/logger.js';
import type { BackupJobsTable } from '../../store/schema.js';
import type { Store, Tx } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import type { AccessService } from '../identity/access-service.js';
import type { IdentityService } from '../identity/identity-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import { compileCondition, type CompiledExpression } from '../policy/language/compiler.js';
import { ObjectFacts, resourceGroupOf } from '../policy/fact-sources.js';
import { nextSlot, nextSlots, type Scheduler } from '../scheduler/scheduler.js';
import type { Task, TaskKind, TaskService } from '../tasks/task-service.js';
import type { BackupService } from './backup-service.js';
import { checkRetention, type Retention } from './retention.js';
import { refuseTakenName, rowsByName } from '../../store/rows.js';

/** The role a job's identity is bound to on its scope (made on first use; admins may narrow it). */
export const backupJobRole = 'backup-job';
const backupJobPermissions = ['inventory.read', 'backup.read', 'backup.run'];
const scheduleOwner = 'backup.job';
const namePattern = /^[a-z][a-z0-9._-]{1,62}$/;

export interface BackupJobInput {
  name: string;
  description?: string | null;
  /** The repository (id or name) the job writes to. */
  repository: string;
  /** A condition over `vm` and `group` facts, e.g. `'env:prod' in vm.tags`; absent: every VM in scope. */
  selector?: string | null;
  /** The object (id or name) whose subtree the job reaches; absent or null: everything. */
  scope?: string | null;
  /** A cron pattern; absent or null: on demand only. */
  schedule?: string | null;
  timeZone?: string;
  enabled?: boolean;
  retention?: Retention | null;
  concurrency?: { perHost?: number; perRepository?: number };
  /** Restore-test each backup a run makes on this host (id or name); null: none. */
  restoreTest?: RestoreTestInput | null;
}

export interface RestoreTestInput {
  host: string;
  /** What the guest prints once it is up (a regular expression; default a login prompt). */
  marker?: string;
  timeoutSeconds?: number;
}

/** A job's restore tests as kept: the host resolved. */
interface RestoreTestSettings {
  hostId: string;
  marker?: string;
  timeoutSeconds?: number;
}

export interface BackupJobView {
  id: string;
  name: string;
  description: string | null;
  repository: { id: string; name: string };
  selector: string | null;
  scope: { id: string; name: string; kind: string } | null;
  schedule: string | null;
  timeZone: string;
  enabled: boolean;
  retention: Retention | null;
  concurrency: { perHost: number; perRepository: number };
  restoreTest: {
    host: { id: string; name: string };
    marker: string | null;
    timeoutSeconds: number | null;
  } | null;
  identity: { id: string; name: string };
  /** The next slots (at most three) while the job is enabled and scheduled. */
  nextRuns: number[];
  lastRun: {
    taskId: string;
    state: string;
    trigger: string;
    startedAt: number | null;
    endedAt: number | null;
  } | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

export interface JobRunResult {
  job: string;
  /** The VMs the job selected, each with the backup asked for it. */
  vms: Array<{
    vmId: string;
    vmName: string;
    taskId: string | null;
    state: 'succeeded' | 'failed' | 'cancelled';
    backupId?: string;
    scope?: string;
    readBytes?: number;
    error?: { code: string; message: string };
  }>;
  /** Selected, but of a family that cannot be backed up. */
  skipped: Array<{ vmId: string; vmName: string; reason: string }>;
  /** Backups the retention removed after the run. */
  pruned: string[];
  /** The restore tests of the backups it made (when the job asks for them). */
  restoreTests: Array<{
    vmId: string;
    vmName: string;
    backupId: string;
    taskId: string | null;
    state: 'succeeded' | 'failed' | 'cancelled';
    error?: { code: string; message: string };
  }>;
}

const RunParams = Type.Object({
  jobId: Type.String(),
  jobName: Type.Optional(Type.String()),
  trigger: Type.Union([Type.Literal('schedule'), Type.Literal('manual')]),
  /** The schedule's slot a scheduled run fired for. */
  slot: Type.Optional(Type.Number()),
});

const defaultConcurrency = { perHost: 1, perRepository: 2 };

/** A job's settings once checked: ids resolved, pattern and retention valid. */
interface JobSettings {
  repositoryId: string;
  selector: string | null;
  scopeId: string | null;
  schedule: string | null;
  timeZone: string;
  enabled: boolean;
  retention: Retention | null;
  perHost: number;
  perRepository: number;
  restoreTest: RestoreTestSettings | null;
}

function checkConcurrency(field: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > 64)
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      `concurrency.${field} must be a whole number from 1 to 64`,
      {
        field: `concurrency.${field}`,
        value,
      },
    );
  return value;
}

function compileSelector(selector: string): CompiledExpression {
  try {
    return compileCondition(selector, {
      allowedRoots: ['vm', 'group'],
      purpose: "a job's selector",
    });
  } catch (error) {
    if (isZenithError(error))
      throw new ZenithError(error.code, `selector: ${error.message}`, {
        ...error.details,
        field: 'selector',
      });
    throw error;
  }
}

/** How many backups run now per host and per repository (every run of every job in this process). */
class Slots {
  readonly #busy = new Map<string, number>();
  #waiters: Array<() => void> = [];
  free(key: string, limit: number): boolean {
    return (this.#busy.get(key) ?? 0) < limit;
  }
  take(key: string): void {
    this.#busy.set(key, (this.#busy.get(key) ?? 0) + 1);
  }
  give(key: string): void {
    const left = (this.#busy.get(key) ?? 1) - 1;
    if (left > 0) this.#busy.set(key, left);
    else this.#busy.delete(key);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
  /** Resolves when any slot is given back (another run's backup ended), or the signal aborts. */
  released(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        signal.removeEventListener('abort', wake);
        resolve();
      };
      this.#waiters.push(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }
}

export class BackupJobs {
  readonly #run: TaskKind<Static<typeof RunParams>>;
  readonly #slots = new Slots();

  constructor(
    private readonly deps: {
      store: Store;
      inventory: InventoryService;
      access: AccessService;
      identities: IdentityService;
      tasks: TaskService;
      scheduler: Scheduler;
      backups: BackupService;
      clock: Clock;
      logger: Logger;
    },
  ) {
    this.#run = deps.tasks.register({
      name: 'backup.job',
      params: RunParams,
      run: async ({ task, signal, progress }) => this.#runJob(task, signal, progress),
      // Run again: the backups it recorded are waited for, the others asked for.
      recover: async () => 'retry',
      maxAttempts: 5,
    });
    deps.scheduler.register(scheduleOwner, {
      fire: async (firing) => {
        const job = await this.#row(firing.id).catch(() => null);
        if (!job) {
          await deps.store.transaction((tx) => firing.take(tx, null));
          return;
        }
        const busy = await this.#unfinishedRun(job.id);
        if (busy) {
          // One run at a time: a slot that comes while the last run goes on is passed.
          await deps.store.transaction((tx) => firing.take(tx, null));
          deps.logger.warn(
            { job: job.name, slot: firing.slot, running: busy },
            'a backup job’s slot came while its last run goes on: this slot is passed',
          );
          return;
        }
        await deps.tasks.submit({
          kind: this.#run,
          targetId: job.id,
          params: { jobId: job.id, jobName: job.name, trigger: 'schedule', slot: firing.slot },
          owner: await this.#actor(job),
          prepare: (tx, taskId) => firing.take(tx, taskId),
        });
      },
    });
  }

  // —— the jobs ——

  async list(): Promise<BackupJobView[]> {
    const rows = await rowsByName(this.deps.store.db, 'backup_jobs');
    return Promise.all(rows.map((row) => this.#view(row)));
  }

  async get(idOrName: string): Promise<BackupJobView> {
    return this.#view(await this.#row(idOrName));
  }

  /** The scope a job reaches (null: everything), for authorizing a request about it. */
  async scopeOf(idOrName: string): Promise<{ id: string; scopeId: string | null }> {
    const row = await this.#row(idOrName);
    return { id: row.id, scopeId: row.scope_id };
  }

  /**
   * Makes a job. The caller has backup.manage on the scope (the route checks); the job's binding
   * needs backup.run there too, so `creator` must hold it.
   */
  async create(
    input: BackupJobInput,
    creator: { id: string; role: string; name: string },
  ): Promise<BackupJobView> {
    if (!namePattern.test(input.name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${input.name}' is not a valid job name: 2–63 lower-case letters, digits and . _ -, starting with a letter`,
        { field: 'name', name: input.name },
      );
    await refuseTakenName(
      this.deps.store.db,
      'backup_jobs',
      input.name,
      `a backup job named '${input.name}' exists`,
    );
    const settings = await this.#settings(input, null);
    this.#mayDelegate(creator, settings.scopeId);
    this.#mayRestoreTest(creator, settings);
    const now = this.deps.clock.now();
    const id = newId('backupJob', now);
    await this.#ensureRole();
    const identity = await this.deps.identities.createServiceIdentity({
      name: `job-${id.slice('bjob_'.length).toLowerCase()}`,
      role: 'none',
      displayName: `backup job ${input.name}`,
    });
    let bindingId: string | null = null;
    try {
      bindingId = (
        await this.deps.access.createBinding(
          { subject: identity.id, role: backupJobRole, scope: settings.scopeId },
          creator.id,
        )
      ).id;
      const row: BackupJobsTable = {
        id,
        name: input.name,
        description: input.description ?? null,
        ...columnsOf(settings),
        identity_id: identity.id,
        binding_id: bindingId,
        created_by: creator.id,
        created_at: now,
        updated_at: now,
      };
      await this.deps.store.transaction(async (tx) => {
        await tx.insertInto('backup_jobs').values(row).execute();
        await this.#setSchedule(tx, row);
      });
    } catch (error) {
      // Nothing is left of a job that was not made.
      if (bindingId) await this.deps.access.deleteBinding(bindingId).catch(() => undefined);
      await this.deps.identities.remove(identity.id).catch(() => undefined);
      await this.#refuseTakenName(input.name);
      throw error;
    }
    return this.get(id);
  }

  /** Changes a job; a new scope moves its binding (the caller needs the same rights there). */
  async update(
    idOrName: string,
    changes: Partial<Omit<BackupJobInput, 'name'>>,
    by: { id: string; role: string; name: string },
  ): Promise<BackupJobView> {
    const row = await this.#row(idOrName);
    const current: BackupJobInput = {
      name: row.name,
      description: row.description,
      repository: row.repository_id,
      selector: row.selector,
      scope: row.scope_id,
      schedule: row.schedule,
      timeZone: row.time_zone,
      enabled: row.enabled === 1,
      retention: row.retention ? (JSON.parse(row.retention) as Retention) : null,
      concurrency: { perHost: row.max_per_host, perRepository: row.max_per_repository },
      restoreTest: restoreTestOf(row)
        ? { ...restoreTestOf(row)!, host: restoreTestOf(row)!.hostId }
        : null,
    };
    const merged: BackupJobInput = { ...current };
    for (const [key, value] of Object.entries(changes))
      if (value !== undefined) (merged as unknown as Record<string, unknown>)[key] = value;
    if (changes.concurrency)
      merged.concurrency = { ...current.concurrency, ...changes.concurrency };
    const settings = await this.#settings(merged, row);
    // Restore tests asked for anew, or moved to another host or scope: the one who asks must hold
    // backup.restore there themselves.
    if (
      settings.restoreTest &&
      (row.restore_test === null ||
        restoreTestOf(row)!.hostId !== settings.restoreTest.hostId ||
        settings.scopeId !== row.scope_id)
    )
      this.#mayRestoreTest(by, settings);
    let bindingId = row.binding_id;
    const moved = settings.scopeId !== row.scope_id;
    if (moved) {
      this.#mayDelegate(by, settings.scopeId);
      bindingId = (
        await this.deps.access.createBinding(
          { subject: row.identity_id, role: backupJobRole, scope: settings.scopeId },
          by.id,
        )
      ).id;
    }
    const updated: BackupJobsTable = {
      ...row,
      description: merged.description ?? null,
      ...columnsOf(settings),
      binding_id: bindingId,
      updated_at: this.deps.clock.now(),
    };
    try {
      await this.deps.store.transaction(async (tx) => {
        await tx.updateTable('backup_jobs').set(updated).where('id', '=', row.id).execute();
        const scheduleChanged =
          row.schedule !== updated.schedule ||
          row.time_zone !== updated.time_zone ||
          row.enabled !== updated.enabled;
        if (scheduleChanged) await this.#setSchedule(tx, updated);
      });
    } catch (error) {
      if (moved && bindingId)
        await this.deps.access.deleteBinding(bindingId).catch(() => undefined);
      throw error;
    }
    if (moved && row.binding_id)
      await this.deps.access.deleteBinding(row.binding_id).catch(() => undefined);
    return this.get(row.id);
  }

  /** Removes a job, its schedule, binding and identity; its backups stay (prune them apart). */
  async remove(idOrName: string): Promise<BackupJobView> {
    const row = await this.#row(idOrName);
    const view = await this.#view(row);
    const running = await this.#unfinishedRun(row.id);
    if (running)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `backup job ${row.name} is running (task ${running}): cancel the run or wait for it`,
        { task: running },
      );
    await this.deps.store.transaction(async (tx) => {
      await tx.deleteFrom('backup_jobs').where('id', '=', row.id).execute();
      await this.deps.scheduler.remove(tx, row.id);
    });
    if (row.binding_id) await this.deps.access.deleteBinding(row.binding_id).catch(() => undefined);
    await this.deps.identities.remove(row.identity_id).catch(() => undefined);
    return view;
  }

  /** Starts a run now (a run already under way is waited for: one run of a job at a time). */
  async runNow(idOrName: string, owner: Actor, requestId?: string): Promise<Task> {
    const row = await this.#row(idOrName);
    return this.deps.tasks.submit({
      kind: this.#run,
      targetId: row.id,
      params: { jobId: row.id, jobName: row.name, trigger: 'manual' },
      owner,
      ...(requestId ? { requestId } : {}),
    });
  }

  /** The VMs a run would back up now, and those it selects but cannot back up. */
  async selection(idOrName: string): Promise<{
    vms: Array<{ id: string; name: string; hostId: string | null }>;
    skipped: Array<{ id: string; name: string; reason: string }>;
  }> {
    const row = await this.#row(idOrName);
    const { chosen, skipped } = this.#select(row);
    return {
      vms: chosen.map((vm) => ({ id: vm.id, name: vm.name, hostId: this.#hostOf(vm) })),
      skipped: skipped.map(({ vm, reason }) => ({ id: vm.id, name: vm.name, reason })),
    };
  }

  // —— a run ——

  async #runJob(
    task: Task<Static<typeof RunParams>>,
    signal: AbortSignal,
    progress: ActionContext['progress'],
  ): Promise<JobRunResult> {
    const row = await this.#row(task.params.jobId);
    const owner = await this.#actor(row);
    // What earlier runs of the job recorded is needed only while they may resume: once ended, gone.
    for (const table of ['backup_job_items', 'backup_job_restore_tests'] as const)
      await this.deps.store.db
        .deleteFrom(table)
        .where('run_task_id', 'in', (eb) =>
          eb
            .selectFrom('tasks')
            .select('id')
            .where('kind', '=', 'backup.job')
            .where('target_id', '=', row.id)
            .where('state', 'in', ['succeeded', 'failed', 'cancelled']),
        )
        .execute();
    // What this run asked for before a restart: VM → the task asked for it.
    const askedFor = async (table: 'backup_job_items' | 'backup_job_restore_tests') =>
      new Map(
        (
          await this.deps.store.db
            .selectFrom(table)
            .selectAll()
            .where('run_task_id', '=', task.id)
            .execute()
        ).map((item) => [item.vm_id, item.task_id]),
      );
    const recorded = await askedFor('backup_job_items');
    const recordedTests = await askedFor('backup_job_restore_tests');
    const { chosen, skipped } = this.#select(row);
    // A VM asked for before a restart is waited for even if the selector no longer picks it.
    const byId = new Map(chosen.map((vm) => [vm.id, vm]));
    for (const vmId of recorded.keys()) {
      const vm = this.deps.inventory.index.get(vmId);
      if (vm && !byId.has(vmId)) byId.set(vmId, vm);
    }
    const vms = [...byId.values()];
    const result: JobRunResult = {
      job: row.name,
      vms: [],
      skipped: skipped.map(({ vm, reason }) => ({ vmId: vm.id, vmName: vm.name, reason })),
      pruned: [],
      restoreTests: [],
    };
    const repositoryKey = `repository:${row.repository_id}`;
    const pending = vms.filter((vm) => !recorded.has(vm.id));
    // `done` never rejects (an abort or a store failure is its `error`): the losers of each race
    // below are left pending or settled, never an unhandled rejection.
    const inFlight = new Map<
      string,
      { vm: ManagedObject; keys: string[]; done: Promise<{ task: Task } | { error: unknown }> }
    >();
    const report = () =>
      progress({
        percent: vms.length === 0 ? 100 : (result.vms.length / vms.length) * 100,
        message: `${result.vms.length} of ${vms.length} VMs done`,
        details: { done: result.vms.length, total: vms.length, running: inFlight.size },
      });
    const follow = (vm: ManagedObject, taskId: string, keys: string[]) => {
      for (const key of keys) this.#slots.take(key);
      const done = this.deps.tasks.waitFor(taskId, signal).then(
        (task) => ({ task }),
        (error: unknown) => ({ error }),
      );
      inFlight.set(taskId, { vm, keys, done });
    };
    // Backups asked for before a restart: waited for first (they hold their host's slot).
    for (const [vmId, taskId] of recorded) {
      const vm = byId.get(vmId);
      if (vm) follow(vm, taskId, [`host:${this.#hostOf(vm)}`, repositoryKey]);
    }
    report();
    try {
      while (pending.length > 0 || inFlight.size > 0) {
        if (signal.aborted) throw signal.reason;
        for (let i = 0; i < pending.length;) {
          const vm = pending[i]!;
          const hostKey = `host:${this.#hostOf(vm)}`;
          if (
            !this.#slots.free(hostKey, row.max_per_host) ||
            !this.#slots.free(repositoryKey, row.max_per_repository)
          ) {
            i++;
            continue;
          }
          pending.splice(i, 1);
          try {
            const child = await this.deps.backups.backUp(
              vm.id,
              row.repository_id,
              owner,
              undefined,
              {
                jobId: row.id,
                prepare: async (tx, childId) => {
                  await tx
                    .insertInto('backup_job_items')
                    .values({ run_task_id: task.id, vm_id: vm.id, task_id: childId })
                    .execute();
                },
              },
            );
            follow(vm, child.id, [hostKey, repositoryKey]);
          } catch (error) {
            result.vms.push({
              vmId: vm.id,
              vmName: vm.name,
              taskId: null,
              state: 'failed',
              error: errorOf(error),
            });
            report();
          }
        }
        // Every slot this run needs is held by other runs' backups: wait until one is given back.
        if (inFlight.size === 0) {
          if (pending.length > 0) await this.#slots.released(signal);
          continue;
        }
        const [taskId, ended] = await Promise.race(
          [...inFlight.entries()].map(async ([id, entry]) => [id, await entry.done] as const),
        );
        if ('error' in ended) throw ended.error;
        const entry = inFlight.get(taskId)!;
        inFlight.delete(taskId);
        for (const key of entry.keys) this.#slots.give(key);
        result.vms.push(outcomeOf(entry.vm, ended.task));
        report();
      }
    } catch (error) {
      // Cancelled: the backups under way are cancelled too, and their slots given back.
      for (const [taskId, entry] of inFlight) {
        for (const key of entry.keys) this.#slots.give(key);
        await this.deps.tasks.cancel(taskId, owner).catch(() => undefined);
      }
      throw error;
    }
    const retention = row.retention ? (JSON.parse(row.retention) as Retention) : null;
    if (retention)
      for (const outcome of result.vms)
        if (outcome.state === 'succeeded')
          result.pruned.push(
            ...(await this.deps.backups.pruneJobBackups(
              row.repository_id,
              outcome.vmId,
              row.id,
              retention,
            )),
          );
    const restoreTest = restoreTestOf(row);
    if (restoreTest)
      for (const outcome of result.vms) {
        if (outcome.state !== 'succeeded' || !outcome.backupId) continue;
        if (signal.aborted) throw signal.reason;
        result.restoreTests.push(
          await this.#restoreTest(task.id, row, outcome, restoreTest, recordedTests, owner, signal),
        );
        report();
      }
    const failed = result.vms.filter((vm) => vm.state !== 'succeeded');
    const failedTests = result.restoreTests.filter((test) => test.state !== 'succeeded');
    if (failed.length > 0 || failedTests.length > 0)
      throw new ZenithError(
        'ZEN_BACKUP_JOB_INCOMPLETE',
        [
          failed.length > 0
            ? `${failed.length} of ${result.vms.length} VMs of backup job ${row.name} were not backed up: ${failed
                .map((vm) => `${vm.vmName} (${vm.error?.code ?? vm.state})`)
                .join(', ')}`
            : null,
          failedTests.length > 0
            ? `${failedTests.length} of ${result.restoreTests.length} restore tests of backup job ${row.name} failed: ${failedTests
                .map((test) => `${test.vmName} (${test.error?.code ?? test.state})`)
                .join(', ')}`
            : null,
        ]
          .filter((part) => part !== null)
          .join('; '),
        { ...result },
      );
    return result;
  }

  /**
   * One backup restore-tested, one at a time (each boots a VM): asked for once per run (recorded
   * with its task, so a run resumed after a crash waits for it instead of asking again).
   */
  async #restoreTest(
    runTaskId: string,
    row: BackupJobsTable,
    outcome: JobRunResult['vms'][number],
    settings: RestoreTestSettings,
    recorded: Map<string, string>,
    owner: Actor,
    signal: AbortSignal,
  ): Promise<JobRunResult['restoreTests'][number]> {
    const base = { vmId: outcome.vmId, vmName: outcome.vmName, backupId: outcome.backupId! };
    let taskId = recorded.get(outcome.vmId);
    try {
      if (!taskId)
        taskId = (
          await this.deps.backups.restoreTest(
            outcome.backupId!,
            {
              host: settings.hostId,
              ...(settings.marker !== undefined ? { marker: settings.marker } : {}),
              ...(settings.timeoutSeconds !== undefined
                ? { timeoutSeconds: settings.timeoutSeconds }
                : {}),
            },
            owner,
            undefined,
            {
              prepare: async (tx, childId) => {
                await tx
                  .insertInto('backup_job_restore_tests')
                  .values({ run_task_id: runTaskId, vm_id: outcome.vmId, task_id: childId })
                  .execute();
              },
            },
          )
        ).id;
      const ended = await this.deps.tasks.waitFor(taskId, signal);
      return ended.state === 'succeeded'
        ? { ...base, taskId, state: 'succeeded' }
        : {
            ...base,
            taskId,
            state: ended.state === 'cancelled' ? 'cancelled' : 'failed',
            ...(ended.error
              ? { error: { code: ended.error.code, message: ended.error.message } }
              : {}),
          };
    } catch (error) {
      if (signal.aborted) throw error;
      this.deps.logger.warn(
        { job: row.name, vm: outcome.vmName, error: (error as Error).message },
        'a restore test of a backup job could not be asked for',
      );
      return { ...base, taskId: taskId ?? null, state: 'failed', error: errorOf(error) };
    }
  }

  /** The VMs the job's selector picks among those its identity may back up. */
  #select(row: BackupJobsTable): {
    chosen: ManagedObject[];
    skipped: Array<{ vm: ManagedObject; reason: string }>;
  } {
    const selector = row.selector ? compileSelector(row.selector) : null;
    const asker = { id: row.identity_id, role: 'none' as const };
    const reachable = this.deps.access.filter(asker, 'backup.run');
    const chosen: ManagedObject[] = [];
    const skipped: Array<{ vm: ManagedObject; reason: string }> = [];
    for (const vm of this.deps.inventory.index.ofKind('vm')) {
      if (!reachable(vm.id)) continue;
      if (selector) {
        const group = resourceGroupOf(
          this.deps.inventory.index,
          vm.userFacts['user.resourceGroup'],
        );
        let picked: boolean;
        try {
          picked =
            selector.evaluate({
              vm: new ObjectFacts(vm),
              group: group ? new ObjectFacts(group) : undefined,
            }) === true;
        } catch {
          picked = false; // a selector that fails on a VM's facts leaves it out
        }
        if (!picked) continue;
      }
      if (!this.deps.backups.canBackUp(vm))
        skipped.push({ vm, reason: 'its family cannot be backed up (no disk streams)' });
      else chosen.push(vm);
    }
    chosen.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { chosen, skipped };
  }

  #hostOf(vm: ManagedObject): string | null {
    return vm.parentId ?? vm.connectionId;
  }

  // —— helpers ——

  async #settings(input: BackupJobInput, existing: BackupJobsTable | null): Promise<JobSettings> {
    const repository = await this.deps.backups.findRepository(input.repository);
    const selector = input.selector?.trim() ? input.selector : null;
    if (selector !== null) compileSelector(selector);
    if (input.scope === '')
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'scope is empty: leave it out (or null) for everything',
        {
          field: 'scope',
        },
      );
    const scopeId = input.scope == null ? null : this.deps.inventory.lookup(input.scope).id;
    const schedule = input.schedule?.trim() ? input.schedule.trim() : null;
    const timeZone = input.timeZone ?? existing?.time_zone ?? 'UTC';
    // A pattern and zone that cannot give a slot are refused before anything is written.
    nextSlot({ cron: schedule ?? '0 0 * * *', timeZone }, this.deps.clock.now());
    const retention = input.retention ?? null;
    if (retention) checkRetention(retention);
    const restoreTest = input.restoreTest ? this.#restoreTestSettings(input.restoreTest) : null;
    return {
      repositoryId: repository.id,
      selector,
      scopeId,
      schedule,
      timeZone,
      enabled: input.enabled ?? true,
      retention,
      perHost: checkConcurrency('perHost', input.concurrency?.perHost, defaultConcurrency.perHost),
      perRepository: checkConcurrency(
        'perRepository',
        input.concurrency?.perRepository,
        defaultConcurrency.perRepository,
      ),
      restoreTest,
    };
  }

  #restoreTestSettings(input: RestoreTestInput): RestoreTestSettings {
    const host = this.deps.inventory.resolve('host', input.host);
    if (input.marker !== undefined)
      try {
        new RegExp(input.marker, 'm');
      } catch (error) {
        throw new ZenithError(
          'ZEN_BAD_REQUEST',
          `restoreTest.marker is not a regular expression: ${(error as Error).message}`,
          { field: 'restoreTest.marker' },
        );
      }
    const timeout = input.timeoutSeconds;
    if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 1 || timeout > 3600))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'restoreTest.timeoutSeconds must be from 1 to 3600',
        {
          field: 'restoreTest.timeoutSeconds',
        },
      );
    return {
      hostId: host.id,
      ...(input.marker !== undefined ? { marker: input.marker } : {}),
      ...(timeout !== undefined ? { timeoutSeconds: timeout } : {}),
    };
  }

  #restoreTestView(row: BackupJobsTable): BackupJobView['restoreTest'] {
    const settings = restoreTestOf(row);
    if (!settings) return null;
    const host = this.deps.inventory.index.get(settings.hostId);
    return {
      host: { id: settings.hostId, name: host?.name ?? settings.hostId },
      marker: settings.marker ?? null,
      timeoutSeconds: settings.timeoutSeconds ?? null,
    };
  }

  /**
   * A job's restore tests restore its VMs' backups onto a host: only to be asked for by someone who
   * may restore there themselves (backup.restore on the host and on the job's scope).
   */
  #mayRestoreTest(by: { id: string; role: string; name: string }, settings: JobSettings): void {
    if (!settings.restoreTest) return;
    for (const scope of [settings.restoreTest.hostId, settings.scopeId])
      this.#holds(by, 'backup.restore', scope, 'have a backup job restore-test', {
        field: 'restoreTest',
      });
  }

  /** A job's binding gives backup.run on its scope: only to be made by someone who holds it there. */
  #mayDelegate(by: { id: string; role: string; name: string }, scopeId: string | null): void {
    this.#holds(by, 'backup.run', scopeId, 'give a backup job backup.run');
  }

  /** ZEN_FORBIDDEN unless `by` holds the permission on the scope (what a job is given, its maker holds). */
  #holds(
    by: { id: string; role: string; name: string },
    permission: 'backup.run' | 'backup.restore',
    scope: string | null,
    what: string,
    details: Record<string, unknown> = {},
  ): void {
    if (this.deps.access.decide({ id: by.id, role: by.role as 'none' }, permission, scope).allowed)
      return;
    throw new ZenithError(
      'ZEN_FORBIDDEN',
      `${by.name} may not ${what} ${scope ? `on ${scope}` : 'everywhere'}: they do not hold ${permission} there`,
      { permission, scope, ...details },
    );
  }

  async #ensureRole(): Promise<void> {
    const role = await this.deps.access.getRole(backupJobRole).catch(() => null);
    if (role) return;
    await this.deps.access
      .createRole({
        name: backupJobRole,
        permissions: backupJobPermissions,
        description: 'what a backup job acts with on its scope',
      })
      .catch(async (error: unknown) => {
        // Made by a concurrent request meanwhile: as good.
        if (!(await this.deps.access.getRole(backupJobRole).catch(() => null))) throw error;
      });
  }

  async #setSchedule(tx: Tx, row: BackupJobsTable): Promise<void> {
    if (row.schedule === null) await this.deps.scheduler.remove(tx, row.id);
    else
      await this.deps.scheduler.set(tx, row.id, scheduleOwner, {
        cron: row.schedule,
        timeZone: row.time_zone,
        enabled: row.enabled === 1,
      });
  }

  async #refuseTakenName(name: string): Promise<void> {
    const taken = await this.deps.store.db
      .selectFrom('backup_jobs')
      .select('id')
      .where('name', '=', name)
      .executeTakeFirst()
      .catch(() => undefined);
    if (taken)
      throw new ZenithError('ZEN_CONFLICT', `a backup job named '${name}' exists`, { name });
  }

  async #row(idOrName: string): Promise<BackupJobsTable> {
    const row = await this.deps.store.db
      .selectFrom('backup_jobs')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', idOrName), eb('name', '=', idOrName)]))
      .executeTakeFirst();
    if (!row) throw new ZenithError('ZEN_NOT_FOUND', `no backup job ${idOrName}`, { id: idOrName });
    return row;
  }

  async #actor(row: BackupJobsTable): Promise<Actor> {
    const identity = await this.deps.identities.get(row.identity_id);
    return { id: identity.id, kind: identity.kind, name: identity.name };
  }

  async #unfinishedRun(jobId: string): Promise<string | null> {
    const row = await this.deps.store.db
      .selectFrom('tasks')
      .select('id')
      .where('kind', '=', 'backup.job')
      .where('target_id', '=', jobId)
      .where('state', 'in', ['queued', 'running'])
      .executeTakeFirst();
    return row?.id ?? null;
  }

  async #view(row: BackupJobsTable): Promise<BackupJobView> {
    const repository = await this.deps.backups.findRepository(row.repository_id).catch(() => null);
    const scope = row.scope_id ? this.deps.inventory.index.get(row.scope_id) : undefined;
    const identity = await this.deps.identities.get(row.identity_id).catch(() => null);
    const schedule = row.schedule ? await this.deps.scheduler.get(row.id) : null;
    const last = await this.deps.store.db
      .selectFrom('tasks')
      .selectAll()
      .where('kind', '=', 'backup.job')
      .where('target_id', '=', row.id)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .executeTakeFirst();
    const nextRuns =
      schedule?.enabled && schedule.nextRunAt !== null
        ? [
            schedule.nextRunAt,
            ...nextSlots(
              { cron: schedule.cron, timeZone: schedule.timeZone },
              schedule.nextRunAt,
              2,
            ),
          ]
        : [];
    return {
      id: row.id,
      name: row.name,
      description: row.description,
      repository: { id: row.repository_id, name: repository?.name ?? row.repository_id },
      selector: row.selector,
      scope: row.scope_id
        ? { id: row.scope_id, name: scope?.name ?? row.scope_id, kind: scope?.kind ?? 'unknown' }
        : null,
      schedule: row.schedule,
      timeZone: row.time_zone,
      enabled: row.enabled === 1,
      retention: row.retention ? (JSON.parse(row.retention) as Retention) : null,
      concurrency: { perHost: row.max_per_host, perRepository: row.max_per_repository },
      restoreTest: this.#restoreTestView(row),
      identity: { id: row.identity_id, name: identity?.name ?? row.identity_id },
      nextRuns,
      lastRun: last
        ? {
            taskId: last.id,
            state: last.state,
            trigger: (JSON.parse(last.params) as { trigger?: string }).trigger ?? 'manual',
            startedAt: last.started_at === null ? null : Number(last.started_at),
            endedAt: last.ended_at === null ? null : Number(last.ended_at),
          }
        : null,
      createdBy: row.created_by,
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
    };
  }
}

/** A job's checked settings as its row's columns. */
function restoreTestOf(row: BackupJobsTable): RestoreTestSettings | null {
  return row.restore_test ? (JSON.parse(row.restore_test) as RestoreTestSettings) : null;
}

function columnsOf(settings: JobSettings) {
  return {
    repository_id: settings.repositoryId,
    selector: settings.selector,
    scope_id: settings.scopeId,
    schedule: settings.schedule,
    time_zone: settings.timeZone,
    enabled: settings.enabled ? 1 : 0,
    retention: settings.retention ? JSON.stringify(settings.retention) : null,
    max_per_host: settings.perHost,
    max_per_repository: settings.perRepository,
    restore_test: settings.restoreTest ? JSON.stringify(settings.restoreTest) : null,
  };
}

function errorOf(error: unknown): { code: string; message: string } {
  return isZenithError(error)
    ? { code: error.code, message: error.message }
    : { code: 'ZEN_INTERNAL', message: (error as Error).message };
}

function outcomeOf(vm: ManagedObject, task: Task): JobRunResult['vms'][number] {
  const base = { vmId: vm.id, vmName: vm.name, taskId: task.id };
  if (task.state === 'succeeded') {
    const result = (task.result ?? {}) as { backupId?: string; scope?: string; readBytes?: number };
    return {
      ...base,
      state: 'succeeded',
      ...(result.backupId ? { backupId: result.backupId } : {}),
      ...(result.scope ? { scope: result.scope } : {}),
      ...(result.readBytes !== undefined ? { readBytes: result.readBytes } : {}),
    };
  }
  return {
    ...base,
    state: task.state === 'cancelled' ? 'cancelled' : 'failed',
    ...(task.error ? { error: { code: task.error.code, message: task.error.message } } : {}),
  };
}
