/**
 * The records of recovery plans and their runs (recovery_plans, recovery_runs, recovery_run_vms):
 * what the plans (./recovery-plans.ts) and the runs (./recovery-runner.ts) read and write, and the
 * views the API answers with.
 */
import { Type, type Static } from 'typebox';
import type {
  NetworkMapping as NetworkMappingSchema,
  RecoveryPlanView,
  RecoveryRunView,
} from '../../api/replication.js';
import type { Clock } from '../../core/clock.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type {
  RecoveryPlansTable,
  RecoveryRunsTable,
  RecoveryRunVmsTable,
} from '../../store/schema.js';
import { rowById } from '../../store/rows.js';
import type { Store, Tx } from '../../store/store.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { MachineService } from '../machines/machine-service.js';
import type { PlacementService } from '../placement/placement-service.js';
import type { TaskService } from '../tasks/task-service.js';
import type { ReplicationService } from './replication-service.js';
import type { SiteService } from './sites.js';

export type RecoveryOperation = 'test' | 'planned' | 'failover';

export interface RecoveryGroup {
  vms: string[];
  marker: string | null;
  /** Up also means its guest agent answers; absent in plans made before it existed. */
  guestAgent?: boolean;
  timeoutSeconds: number;
}

export type NetworkMapping = Static<typeof NetworkMappingSchema>;

export interface RecoveryPlanInput {
  name: string;
  description?: string | null;
  sourceSite: string;
  targetSite: string;
  groups: Array<{ vms: string[]; marker?: string; guestAgent?: boolean; timeoutSeconds?: number }>;
  networkMap?: NetworkMapping[];
  shutdownTimeoutSeconds?: number;
}

export const RunParams = Type.Object({ runId: Type.String() });
export type RunParams = Static<typeof RunParams>;

/** A group's VMs are given this long to be up unless the plan says otherwise. */
export const defaultGroupTimeoutSeconds = 300;

export type RunVmRow = RecoveryRunVmsTable;

/** What a step made at the target: its images, and the identity it runs under. */
export interface StepImages {
  uuid: string;
  name: string;
  paths: string[];
  /** The host's own id of the definition the VM left there (deleted once it is left over). */
  fromExternalId?: string;
  /** A failover's fence of the host the VM left, through its BMC (confirmed off). */
  fenced?: { hostId: string; hostName: string; at: number; elapsedMs: number };
}

export interface RecoveryPlanDeps {
  store: Store;
  inventory: InventoryService;
  connections: ConnectionService;
  tasks: TaskService;
  events: EventBus;
  machines: MachineService;
  placement: PlacementService;
  sites: SiteService;
  replication: ReplicationService;
  clock: Clock;
  logger: Logger;
}

/** Each VM's step of a run is written here before it is taken; a resumed run reads it back. */
export class RecoveryRecords {
  constructor(
    private readonly deps: Pick<
      RecoveryPlanDeps,
      'store' | 'clock' | 'events' | 'inventory' | 'sites'
    >,
  ) {}

  async plan(idOrName: string) {
    const row = await this.deps.store.db
      .selectFrom('recovery_plans')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', idOrName), eb('name', '=', idOrName)]))
      .executeTakeFirst();
    if (!row)
      throw new ZenithError('ZEN_NOT_FOUND', `no recovery plan '${idOrName}'`, { id: idOrName });
    return row;
  }

  async run(runId: string) {
    return rowById(this.deps.store.db, 'recovery_runs', runId, `no recovery run ${runId}`);
  }

  async steps(runId: string): Promise<RunVmRow[]> {
    return this.deps.store.db
      .selectFrom('recovery_run_vms')
      .selectAll()
      .where('run_id', '=', runId)
      .orderBy('group_index')
      .execute();
  }

  async insertStep(tx: Tx, runId: string, vmId: string, vmName: string, group: number) {
    await tx
      .insertInto('recovery_run_vms')
      .values({
        run_id: runId,
        vm_id: vmId,
        vm_name: vmName,
        group_index: group,
        state: 'pending',
        point_id: null,
        point_taken_at: null,
        host_id: null,
        run_vm_id: null,
        images: null,
        started_at: null,
        up_at: null,
        reason: null,
      })
      .execute();
  }

  async updateStep(
    runId: string,
    vmId: string,
    patch: Partial<Omit<RunVmRow, 'run_id' | 'vm_id'>>,
  ) {
    await this.deps.store.db
      .updateTable('recovery_run_vms')
      .set(patch)
      .where('run_id', '=', runId)
      .where('vm_id', '=', vmId)
      .execute();
  }

  async finish(
    runId: string,
    planName: string,
    operation: RecoveryOperation,
    state: 'done' | 'failed',
    error: string | null,
  ): Promise<void> {
    await this.deps.store.db
      .updateTable('recovery_runs')
      .set({ state, ended_at: this.deps.clock.now(), error })
      .where('id', '=', runId)
      .execute();
    const view = await this.runView(await this.run(runId));
    await this.deps.events.publish([
      {
        type: 'recovery.runFinished',
        objectId: null,
        data: { name: planName, runId, operation, state, rtoSeconds: view.rtoSeconds },
      },
    ]);
  }

  async planView(row: RecoveryPlansTable): Promise<RecoveryPlanView> {
    const name = (id: string) => this.deps.inventory.index.get(id)?.name ?? id;
    const [source, target] = await Promise.all([
      this.deps.sites
        .get(row.source_site_id)
        .catch(() => ({ id: row.source_site_id, name: row.source_site_id })),
      this.deps.sites
        .get(row.target_site_id)
        .catch(() => ({ id: row.target_site_id, name: row.target_site_id })),
    ]);
    const last = await this.deps.store.db
      .selectFrom('recovery_runs')
      .selectAll()
      .where('plan_id', '=', row.id)
      .orderBy('started_at', 'desc')
      .executeTakeFirst();
    return {
      id: row.id,
      name: row.name,
      description: row.description,
      sourceSite: { id: source.id, name: source.name },
      targetSite: { id: target.id, name: target.name },
      groups: (JSON.parse(row.groups) as RecoveryGroup[]).map((group) => ({
        vms: group.vms.map((id) => ({ id, name: name(id) })),
        marker: group.marker,
        guestAgent: group.guestAgent === true,
        timeoutSeconds: group.timeoutSeconds,
      })),
      networkMap: JSON.parse(row.network_map) as NetworkMapping[],
      shutdownTimeoutSeconds: Number(row.shutdown_timeout_seconds),
      lastRun: last ? await this.runView(last) : null,
      createdBy: row.created_by,
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
    };
  }

  async runView(row: RecoveryRunsTable): Promise<RecoveryRunView> {
    const steps = await this.steps(row.id);
    const name = (id: string | null) =>
      id ? { id, name: this.deps.inventory.index.get(id)?.name ?? id } : null;
    const started = Number(row.started_at);
    const ups = steps.map((s) => s.up_at);
    const allUp = steps.length > 0 && ups.every((u) => u !== null);
    const taken = steps.flatMap((s) =>
      s.point_taken_at === null ? [] : [Number(s.point_taken_at)],
    );
    return {
      id: row.id,
      planId: row.plan_id,
      operation: row.operation as RecoveryRunView['operation'],
      state: row.state,
      taskId: row.task_id,
      startedAt: started,
      endedAt: row.ended_at === null ? null : Number(row.ended_at),
      rtoSeconds: allUp ? (Math.max(...ups.map(Number)) - started) / 1000 : null,
      dataLossSeconds: taken.length > 0 ? Math.max(0, (started - Math.min(...taken)) / 1000) : null,
      error: row.error,
      vms: steps.map((s) => ({
        vm: { id: s.vm_id, name: s.vm_name },
        group: Number(s.group_index),
        state: s.state,
        pointTakenAt: s.point_taken_at === null ? null : Number(s.point_taken_at),
        host: name(s.host_id),
        runVmId: s.run_vm_id,
        startedAt: s.started_at === null ? null : Number(s.started_at),
        upAt: s.up_at === null ? null : Number(s.up_at),
        reason: s.reason,
        fenced: fencedOf(s.images),
      })),
      createdBy: row.created_by,
    };
  }
}

/** The fence a failover step recorded, as the run view shows it. */
function fencedOf(images: string | null): RecoveryRunView['vms'][number]['fenced'] {
  const fenced = images ? (JSON.parse(images) as StepImages).fenced : undefined;
  return fenced
    ? {
        host: { id: fenced.hostId, name: fenced.hostName },
        at: fenced.at,
        elapsedMs: fenced.elapsedMs,
      }
    : null;
}

export function messageOf(error: unknown): string {
  return isZenithError(error)
    ? `${error.code}: ${error.message}`
    : error instanceof Error
      ? error.message
      : String(error);
}
