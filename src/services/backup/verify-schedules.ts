/**
 * Verify on a schedule: a repository's chunks and manifests re-read and checked (the verify task,
 * `backup.verify`) at the slots of a cron pattern in a time zone, as Proxmox Backup Server's verify
 * jobs do. The schedule is the scheduler's own row, keyed by the repository's id (owner
 * `backup.verify`): a slot fires once across processes, and a slot that comes while the last
 * verify of the repository goes on is passed. A scheduled verify is the system's own work (it
 * reaches no VM): its tasks are owned by the system identity, as a scheduled rebalance is.
 */
import type { VerifyScheduleInput, VerifyScheduleView } from '../../api/backups.js';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Store } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import { nextSlot, nextSlots, type Scheduler } from '../scheduler/scheduler.js';
import type { TaskService } from '../tasks/task-service.js';
import type { BackupService } from './backup-service.js';

const scheduleOwner = 'backup.verify';
const systemActor: Actor = { id: 'system', kind: 'system', name: 'zenith' };

export class VerifySchedules {
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
    deps.scheduler.register(scheduleOwner, {
      fire: async (firing) => {
        const repository = await deps.backups.findRepository(firing.id).catch(() => null);
        if (!repository) {
          // Forgotten since: its schedule goes with it.
          await deps.store.transaction(async (tx) => {
            await firing.take(tx, null);
            await deps.scheduler.remove(tx, firing.id);
          });
          return;
        }
        const running = await this.#unfinishedVerify(repository.id);
        if (running) {
          await deps.store.transaction((tx) => firing.take(tx, null));
          deps.logger.warn(
            { repository: repository.name, slot: firing.slot, running },
            'a verify slot came while the last verify of the repository goes on: this slot is passed',
          );
          return;
        }
        await deps.backups.verify(repository.id, systemActor, undefined, {
          prepare: (tx, taskId) => firing.take(tx, taskId),
        });
      },
    });
  }

  /** The repository's verify schedule (ZEN_NOT_FOUND when it has none). */
  async get(repository: string): Promise<VerifyScheduleView> {
    const record = await this.deps.backups.findRepository(repository);
    const schedule = await this.deps.scheduler.get(record.id);
    if (!schedule || schedule.ownerKind !== scheduleOwner)
      throw new ZenithError(
        'ZEN_NOT_FOUND',
        `backup repository ${record.name} is verified on demand only (no schedule)`,
        { repository: record.name },
      );
    const last = schedule.lastTaskId
      ? await this.deps.tasks.get(schedule.lastTaskId).catch(() => null)
      : null;
    return {
      repository: { id: record.id, name: record.name },
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
        ? {
            taskId: last.id,
            state: last.state,
            startedAt: last.startedAt ?? null,
            endedAt: last.endedAt ?? null,
          }
        : null,
    };
  }

  /** Sets (or replaces) the repository's verify schedule; a pattern or zone that gives no slot is refused. */
  async set(repository: string, input: VerifyScheduleInput): Promise<VerifyScheduleView> {
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
      this.deps.scheduler.set(tx, record.id, scheduleOwner, spec),
    );
    return this.get(record.id);
  }

  /** Removes the schedule (a verify under way goes on); the repository is verified on demand only. */
  async remove(repository: string): Promise<void> {
    const record = await this.deps.backups.findRepository(repository);
    await this.get(record.id);
    await this.deps.store.transaction((tx) => this.deps.scheduler.remove(tx, record.id));
  }

  async #unfinishedVerify(repositoryId: string): Promise<string | null> {
    const rows = await this.deps.store.db
      .selectFrom('tasks')
      .select(['id', 'params'])
      .where('kind', '=', 'backup.verify')
      .where('state', 'in', ['queued', 'running'])
      .execute();
    const row = rows.find(
      (each) =>
        (JSON.parse(each.params) as { repositoryId?: string }).repositoryId === repositoryId,
    );
    return row?.id ?? null;
  }
}
