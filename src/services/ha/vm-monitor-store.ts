/**
 * What VM monitoring keeps: one row per attempt to restart a VM after one stop (the stop is the
 * start of the VM's stopped location interval). An attempt is written in the transaction that
 * queues its start task, so one stop is never restarted twice, and the restarts counted against
 * the limit survive a restart of the control plane.
 */
import type { Clock } from '../../core/clock.js';
import type { StopCause } from '../../hypervisors/driver.js';
import type { HaMonitorRestartsTable } from '../../store/schema.js';
import type { Store, Tx } from '../../store/store.js';

/** restarting: its start task is queued or running; limit: not tried, too many restarts already. */
export type MonitorRestartState = 'restarting' | 'restarted' | 'failed' | 'limit';

export interface MonitorRestart {
  vmId: string;
  stoppedAt: number;
  attempt: number;
  vmName: string;
  hostId: string | null;
  cause: StopCause;
  state: MonitorRestartState;
  taskId: string | null;
  reason: string | null;
  createdAt: number;
  updatedAt: number;
}

function restartOf(row: HaMonitorRestartsTable): MonitorRestart {
  return {
    vmId: row.vm_id,
    stoppedAt: Number(row.stopped_at),
    attempt: Number(row.attempt),
    vmName: row.vm_name,
    hostId: row.host_id,
    cause: row.cause as StopCause,
    state: row.state as MonitorRestartState,
    taskId: row.task_id,
    reason: row.reason,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

export class VmMonitorStore {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** The latest attempt of each VM (its last stop's). */
  async latest(): Promise<Map<string, MonitorRestart>> {
    const rows = await this.store.db
      .selectFrom('ha_monitor_restarts')
      .selectAll()
      .orderBy('vm_id')
      .orderBy('stopped_at')
      .orderBy('attempt')
      .execute();
    const latest = new Map<string, MonitorRestart>();
    for (const row of rows) latest.set(row.vm_id, restartOf(row));
    return latest;
  }

  /** Restarts tried since `since` (a start issued counts, whether it worked or not). */
  async triedSince(vmId: string, since: number): Promise<number> {
    const row = await this.store.db
      .selectFrom('ha_monitor_restarts')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('vm_id', '=', vmId)
      .where('state', '!=', 'limit')
      .where('created_at', '>=', since)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /** Writes an attempt (in the start task's transaction, when given): refused if that attempt exists. */
  async add(
    restart: Omit<MonitorRestart, 'createdAt' | 'updatedAt'>,
    tx?: Tx,
  ): Promise<MonitorRestart> {
    const now = this.clock.now();
    const row: HaMonitorRestartsTable = {
      vm_id: restart.vmId,
      stopped_at: restart.stoppedAt,
      attempt: restart.attempt,
      vm_name: restart.vmName,
      host_id: restart.hostId,
      cause: restart.cause,
      state: restart.state,
      task_id: restart.taskId,
      reason: restart.reason,
      created_at: now,
      updated_at: now,
    };
    await (tx ?? this.store.db).insertInto('ha_monitor_restarts').values(row).execute();
    return restartOf(row);
  }

  async settle(
    restart: MonitorRestart,
    state: MonitorRestartState,
    reason: string | null,
  ): Promise<MonitorRestart> {
    const now = this.clock.now();
    await this.store.db
      .updateTable('ha_monitor_restarts')
      .set({ state, reason, updated_at: now })
      .where('vm_id', '=', restart.vmId)
      .where('stopped_at', '=', restart.stoppedAt)
      .where('attempt', '=', restart.attempt)
      .execute();
    return { ...restart, state, reason, updatedAt: now };
  }
}
