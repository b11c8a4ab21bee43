/**
 * A repository's upkeep on a schedule, as Proxmox Backup Server's verify and garbage collection
 * jobs: its chunks and manifests re-read and checked (the verify task, `backup.verify`), or the
 * chunks no backup names removed (`backup.gc`), at the slots of a cron pattern in a time zone.
 * Each schedule is the scheduler's own row, keyed by the work and the repository's id: a slot
 * fires once across processes, and a slot that comes while the same work on the repository goes
 * on is passed. Scheduled upkeep is the system's own work (it reaches no VM): its tasks are owned
 * by the system identity, as a scheduled rebalance is.
 */
import type { ScheduleInput, ScheduleView } from '../../api/backups.js';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Store, Tx } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import { nextSlot, nextSlots, type Scheduler } from '../scheduler/scheduler.js';
import type { Task, TaskService } from '../tasks/task-service.js';
import type { BackupService } from './backup-service.js';

const systemActor: Actor = { id: 'system', kind: 'system', name: 'zenith' };

/** What a repository's schedule runs. */
export type RepositoryWork = 'verify' | 'garbage-collect';

const works: Record<
  RepositoryWork,
  {
    /** The scheduler's owner kind, and the prefix of the schedule's id. */
    owner: string;
    taskKind: string;
    words: string;
    submit: (
      backups: BackupService,
      repositoryId: string,
      prepare: (tx: Tx, taskId: string) => Promise<void>,
    ) => Promise<Task>;
  }
> = {
  verify: {
    owner: 'backup.verify',
    taskKind: 'backup.verify',
    words: 'verified',
    submit: (backups, id, prepare) => backups.verify(id, systemActor, undefined, { prepare }),
  },
  'garbage-collect': {
    owner: 'backup.gc',
    taskKind: 'backup.gc',
    words: 'collected',
    submit: (backups, id, prepare) =>
      backups.collectGarbage(id, {}, systemActor, undefined, { prepare }),
  },
};

const scheduleId = (work: RepositoryWork, repositoryId: string) =>
  `${works[work].owner}:${repositoryId}`;

export class RepositorySchedules {
  constructor(
    private readonly deps: {
      store: Store;
      scheduler: Scheduler;
      tasks: TaskService;
      backups: BackupService;
      clock: Clock;
      logger: Logger;
    },
  ) {
    for (const work of Object.keys(works) as RepositoryWork[])
      deps.scheduler.register(works[work].owner, {
        fire: async (firing) => {
          const repositoryId = firing.id.slice(works[work].owner.length + 1);
          const repository = await deps.backups.findRepository(repositoryId).catch(() => null);
          if (!repository) {
            // Forgotten since: its schedule goes with it.
            await deps.store.transaction(async (tx) => {
              await firing.take(tx, null);
              await deps.scheduler.remove(tx, firing.id);
            });
            return;
          }
          const running = await this.#unfinished(work, repository.id);
          if (running) {
            await deps.store.transaction((tx) => firing.take(tx, null));
            deps.logger.warn(
              { repository: repository.name, work, slot: firing.slot, running },
              'a slot of a repository schedule came while the same work goes on: this slot is passed',
            );
            return;
          }
          await works[work].submit(deps.backups, repository.id, (tx, taskId) =>
            firing.take(tx, taskId),
          );
        },
      });
  }

  /** The repository's schedule for the work (ZEN_NOT_FOUND when it has none). */
  async get(work: RepositoryWork, repository: string): Promise<ScheduleView> {
    const record = await this.deps.backups.findRepository(repository);
    const schedule = await this.deps.scheduler.get(scheduleId(work, record.id));
    if (!schedule)
      throw new ZenithError(
        'ZEN_NOT_FOUND',
        `backup repository ${record.name} is ${works[work].words} on demand only (no schedule)`,
        { repository: record.name, work },
      );
    const last = schedule.lastTaskId
      ? await this.deps.tasks.get(schedule.lastTaskId).catch(() => null)
      : null;
    return {
      repository: { id: record.id, name: record.name },
      work,
      schedule: schedule.cron,
      timeZone: schedule.timeZone,
      enabled: schedule.enabled,
      nextRuns:
        schedule.enabled && schedule.nextRunAt !== null
          ? [
              schedule.nextRunAt,
              ...nextSlots(
                { cron: schedule.cron, timeZone: schedule.timeZone },
                schedule.nextRunAt,
                2,
              ),
            ]
          : [],
      lastRun: last
        ? { taskId: last.id, state: last.state, startedAt: last.startedAt, endedAt: last.endedAt }
        : null,
    };
  }

  /** The repository's schedules, of each work that has one. */
  async list(repository: string): Promise<ScheduleView[]> {
    const record = await this.deps.backups.findRepository(repository);
    const views: ScheduleView[] = [];
    for (const work of Object.keys(works) as RepositoryWork[])
      if (await this.deps.scheduler.get(scheduleId(work, record.id)))
        views.push(await this.get(work, record.id));
    return views;
  }

  /** Sets (or replaces) the schedule; a pattern or zone that gives no slot is refused. */
  async set(work: RepositoryWork, repository: string, input: ScheduleInput): Promise<ScheduleView> {
    const record = await this.deps.backups.findRepository(repository);
    const spec = {
      cron: input.schedule.trim(),
      timeZone: input.timeZone ?? 'UTC',
      enabled: input.enabled ?? true,
    };
    if (nextSlot(spec, this.deps.clock.now()) === null)
      throw new ZenithError('ZEN_BAD_REQUEST', `'${spec.cron}' has no slot left`, {
        field: 'schedule',
        schedule: spec.cron,
      });
    await this.deps.store.transaction((tx) =>
      this.deps.scheduler.set(tx, scheduleId(work, record.id), works[work].owner, spec),
    );
    return this.get(work, record.id);
  }

  /** Removes the schedule (work under way goes on): the repository's work runs on demand only. */
  async remove(work: RepositoryWork, repository: string): Promise<void> {
    const record = await this.deps.backups.findRepository(repository);
    await this.get(work, record.id);
    await this.deps.store.transaction((tx) =>
      this.deps.scheduler.remove(tx, scheduleId(work, record.id)),
    );
  }

  async #unfinished(work: RepositoryWork, repositoryId: string): Promise<string | null> {
    const rows = await this.deps.store.db
      .selectFrom('tasks')
      .select(['id', 'params'])
      .where('kind', '=', works[work].taskKind)
      .where('state', 'in', ['queued', 'running'])
      .execute();
    const row = rows.find(
      (each) =>
        (JSON.parse(each.params) as { repositoryId?: string }).repositoryId === repositoryId,
    );
    return row?.id ?? null;
  }
}
