/**
 * What high availability keeps: each protected VM's portable description (what a restart
 * elsewhere runs — its host is gone when it is needed), and every failover with each VM's restart,
 * written step by step before the step is taken, so that a control plane killed in the middle
 * resumes it and starts nothing twice.
 */
import type { Clock } from '../../core/clock.js';
import { newId } from '../../core/ids.js';
import type { PortableVm } from '../../hypervisors/driver.js';
import type { HaFailoversTable, HaRestartsTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import { rowById } from '../../store/rows.js';

export type FailoverState = 'fencing' | 'restarting' | 'waiting' | 'done' | 'failed';
export type RestartState = 'pending' | 'starting' | 'running' | 'waiting' | 'failed' | 'skipped';

export interface Failover {
  id: string;
  hostId: string;
  hostName: string;
  state: FailoverState;
  failedAt: number;
  detectedAt: number;
  fenceMethod: string | null;
  fencedAt: number | null;
  taskId: string | null;
  error: string | null;
  updatedAt: number;
  finishedAt: number | null;
}

export interface Restart {
  failoverId: string;
  vmId: string;
  vmName: string;
  priority: string;
  restartOrder: number;
  state: RestartState;
  toHostId: string | null;
  reason: string | null;
  attempts: number;
  startedAt: number | null;
  runningAt: number | null;
}

const priorityRank: Record<string, number> = {
  highest: 0,
  high: 1,
  medium: 2,
  low: 3,
  lowest: 4,
  disabled: 5,
};

/** Start order: the lower order group first, then the highest priority, then by name. */
export function startOrder(
  a: Pick<Restart, 'priority' | 'restartOrder' | 'vmName'>,
  b: Pick<Restart, 'priority' | 'restartOrder' | 'vmName'>,
): number {
  return (
    a.restartOrder - b.restartOrder ||
    (priorityRank[a.priority] ?? 2) - (priorityRank[b.priority] ?? 2) ||
    (a.vmName < b.vmName ? -1 : a.vmName > b.vmName ? 1 : 0)
  );
}

function failoverOf(row: HaFailoversTable): Failover {
  return {
    id: row.id,
    hostId: row.host_id,
    hostName: row.host_name,
    state: row.state as FailoverState,
    failedAt: Number(row.failed_at),
    detectedAt: Number(row.detected_at),
    fenceMethod: row.fence_method,
    fencedAt: row.fenced_at === null ? null : Number(row.fenced_at),
    taskId: row.task_id,
    error: row.error,
    updatedAt: Number(row.updated_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
  };
}

function restartOf(row: HaRestartsTable): Restart {
  return {
    failoverId: row.failover_id,
    vmId: row.vm_id,
    vmName: row.vm_name,
    priority: row.priority,
    restartOrder: Number(row.restart_order),
    state: row.state as RestartState,
    toHostId: row.to_host_id,
    reason: row.reason,
    attempts: Number(row.attempts),
    startedAt: row.started_at === null ? null : Number(row.started_at),
    runningAt: row.running_at === null ? null : Number(row.running_at),
  };
}

export class HaStore {
  /** vm id → when it was last described (all of them in memory: one number per protected VM). */
  readonly #describedAt = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async load(): Promise<void> {
    const rows = await this.store.db
      .selectFrom('ha_vm_descriptions')
      .select(['vm_id', 'described_at'])
      .execute();
    for (const row of rows) this.#describedAt.set(row.vm_id, Number(row.described_at));
  }

  describedAt(vmId: string): number | null {
    return this.#describedAt.get(vmId) ?? null;
  }

  async putDescription(vmId: string, hostId: string, description: PortableVm): Promise<void> {
    const now = this.clock.now();
    const values = {
      vm_id: vmId,
      host_id: hostId,
      description: JSON.stringify(description),
      described_at: now,
    };
    await this.store.db
      .insertInto('ha_vm_descriptions')
      .values(values)
      .onConflict((oc) =>
        oc.column('vm_id').doUpdateSet({
          host_id: values.host_id,
          description: values.description,
          described_at: values.described_at,
        }),
      )
      .execute();
    this.#describedAt.set(vmId, now);
  }

  async description(vmId: string): Promise<PortableVm | null> {
    const row = await this.store.db
      .selectFrom('ha_vm_descriptions')
      .select('description')
      .where('vm_id', '=', vmId)
      .executeTakeFirst();
    return row ? (JSON.parse(row.description) as PortableVm) : null;
  }

  async forgetDescription(vmId: string): Promise<void> {
    await this.store.db.deleteFrom('ha_vm_descriptions').where('vm_id', '=', vmId).execute();
    this.#describedAt.delete(vmId);
  }

  async createFailover(input: {
    hostId: string;
    hostName: string;
    failedAt: number;
    /** Made safe already: 'released' (the host's agent powered its VMs off itself). */
    fenced?: { method: string; at: number };
  }): Promise<Failover> {
    const now = this.clock.now();
    const row: HaFailoversTable = {
      id: newId('failover', now),
      host_id: input.hostId,
      host_name: input.hostName,
      failed_at: input.failedAt,
      detected_at: now,
      state: 'fencing',
      fence_method: input.fenced?.method ?? null,
      fenced_at: input.fenced?.at ?? null,
      task_id: null,
      error: null,
      updated_at: now,
      finished_at: null,
    };
    await this.store.db.insertInto('ha_failovers').values(row).execute();
    return failoverOf(row);
  }

  async updateFailover(
    id: string,
    patch: Partial<Pick<Failover, 'state' | 'fenceMethod' | 'fencedAt' | 'taskId' | 'error'>> & {
      finished?: boolean;
    },
  ): Promise<void> {
    const now = this.clock.now();
    await this.store.db
      .updateTable('ha_failovers')
      .set({
        updated_at: now,
        ...(patch.state !== undefined ? { state: patch.state } : {}),
        ...(patch.fenceMethod !== undefined ? { fence_method: patch.fenceMethod } : {}),
        ...(patch.fencedAt !== undefined ? { fenced_at: patch.fencedAt } : {}),
        ...(patch.taskId !== undefined ? { task_id: patch.taskId } : {}),
        ...(patch.error !== undefined ? { error: patch.error } : {}),
        ...(patch.finished === true ? { finished_at: now } : {}),
      })
      .where('id', '=', id)
      .execute();
  }

  async failover(id: string): Promise<Failover> {
    const row = await rowById(this.store.db, 'ha_failovers', id, `no failover '${id}'`);
    return failoverOf(row);
  }

  /** Failovers not done yet (fencing, restarting, waiting for capacity). */
  async unfinished(): Promise<Failover[]> {
    const rows = await this.store.db
      .selectFrom('ha_failovers')
      .selectAll()
      .where('state', 'in', ['fencing', 'restarting', 'waiting'])
      .orderBy('failed_at')
      .execute();
    return rows.map(failoverOf);
  }

  async list(limit: number): Promise<Failover[]> {
    const rows = await this.store.db
      .selectFrom('ha_failovers')
      .selectAll()
      .orderBy('detected_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(failoverOf);
  }

  async restarts(failoverId: string): Promise<Restart[]> {
    const rows = await this.store.db
      .selectFrom('ha_restarts')
      .selectAll()
      .where('failover_id', '=', failoverId)
      .execute();
    return rows.map(restartOf).sort(startOrder);
  }

  /** The restarts not finished, in every unfinished failover: which VMs are restarting or waiting. */
  async openRestarts(): Promise<Restart[]> {
    const rows = await this.store.db
      .selectFrom('ha_restarts')
      .selectAll()
      .where('state', 'in', ['pending', 'starting', 'waiting'])
      .execute();
    return rows.map(restartOf);
  }

  /** Every VM a failover ran elsewhere, with the host it left; only from these hosts if given. */
  async movedAway(hostIds?: string[]): Promise<Array<{ vmId: string; hostId: string }>> {
    if (hostIds?.length === 0) return [];
    let query = this.store.db
      .selectFrom('ha_restarts')
      .innerJoin('ha_failovers', 'ha_failovers.id', 'ha_restarts.failover_id')
      .select(['ha_restarts.vm_id as vmId', 'ha_failovers.host_id as hostId'])
      .where('ha_restarts.state', '=', 'running');
    if (hostIds) query = query.where('ha_failovers.host_id', 'in', hostIds);
    return query.execute();
  }

  /**
   * Counts the restarts this process saw reach `running`: what moved away from a host changes only
   * then (a reader compares it with the count it last acted on instead of reading again).
   */
  get restartsRun(): number {
    return this.#restartsRun;
  }

  #restartsRun = 0;

  /** Records the VMs a failover restarts (once: a resumed failover keeps what it had). */
  async addRestarts(
    failoverId: string,
    vms: Array<Pick<Restart, 'vmId' | 'vmName' | 'priority' | 'restartOrder'>>,
  ): Promise<void> {
    if (vms.length === 0) return;
    const now = this.clock.now();
    await this.store.db
      .insertInto('ha_restarts')
      .values(
        vms.map((vm) => ({
          failover_id: failoverId,
          vm_id: vm.vmId,
          vm_name: vm.vmName,
          priority: vm.priority,
          restart_order: vm.restartOrder,
          state: 'pending',
          to_host_id: null,
          reason: null,
          attempts: 0,
          started_at: null,
          running_at: null,
          updated_at: now,
        })),
      )
      .onConflict((oc) => oc.columns(['failover_id', 'vm_id']).doNothing())
      .execute();
  }

  async updateRestart(
    failoverId: string,
    vmId: string,
    patch: Partial<
      Pick<Restart, 'state' | 'toHostId' | 'reason' | 'attempts' | 'startedAt' | 'runningAt'>
    >,
  ): Promise<void> {
    await this.store.db
      .updateTable('ha_restarts')
      .set({
        updated_at: this.clock.now(),
        ...(patch.state !== undefined ? { state: patch.state } : {}),
        ...(patch.toHostId !== undefined ? { to_host_id: patch.toHostId } : {}),
        ...(patch.reason !== undefined ? { reason: patch.reason } : {}),
        ...(patch.attempts !== undefined ? { attempts: patch.attempts } : {}),
        ...(patch.startedAt !== undefined ? { started_at: patch.startedAt } : {}),
        ...(patch.runningAt !== undefined ? { running_at: patch.runningAt } : {}),
      })
      .where('failover_id', '=', failoverId)
      .where('vm_id', '=', vmId)
      .execute();
    if (patch.state === 'running') this.#restartsRun += 1;
  }
}
