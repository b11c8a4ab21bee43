/** Migration plans as stored: the schedule and figures as JSON, the state beside them. */
import type { Clock } from '../../core/clock.js';
import { newId } from '../../core/ids.js';
import type { PlacementPlansTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { PlannedMove } from './migration-planner.js';
import type { ExecutionResult } from './plan-executor.js';
import type { Imbalance } from './rebalancer.js';
import { rowById } from '../../store/rows.js';

export type PlanKind = 'rebalance' | 'evacuation' | 'moves';
export type PlanState = 'proposed' | 'applying' | 'applied' | 'failed' | 'discarded';

export interface PlanWake {
  hostId: string;
  hostName: string;
  reason: string;
}

export interface PlanDocument {
  options: Record<string, unknown>;
  moves: Array<PlannedMove & { benefit?: number }>;
  predictedCompletionMs: number;
  peakConcurrency: number;
  reordered: boolean;
  /** Hosts in standby the plan powers on (and waits for) before its moves: their room is needed. */
  wakes?: PlanWake[];
  /** Rebalancing: the fleet's imbalance before and after the moves. */
  metrics?: { before: Imbalance; after: Imbalance; hostsEmptied: string[]; bytesMoved: number };
  /** What happened when it was applied. */
  outcome?: ExecutionResult & { error?: { code: string; message: string } };
}

export interface PlanView extends PlanDocument {
  id: string;
  kind: PlanKind;
  state: PlanState;
  hostId: string | null;
  taskId: string | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

function viewOf(row: PlacementPlansTable): PlanView {
  return {
    id: row.id,
    kind: row.kind as PlanKind,
    state: row.state as PlanState,
    hostId: row.host_id,
    taskId: row.task_id,
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    ...(JSON.parse(row.document) as PlanDocument),
  };
}

export class PlanStore {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async insert(input: {
    kind: PlanKind;
    state: PlanState;
    hostId?: string | null;
    document: PlanDocument;
    createdBy: string;
  }): Promise<PlanView> {
    const now = this.clock.now();
    const row: PlacementPlansTable = {
      id: newId('plan', now),
      kind: input.kind,
      state: input.state,
      host_id: input.hostId ?? null,
      task_id: null,
      document: JSON.stringify(input.document),
      created_by: input.createdBy,
      created_at: now,
      updated_at: now,
    };
    await this.store.db.insertInto('placement_plans').values(row).execute();
    return viewOf(row);
  }

  async get(id: string): Promise<PlanView> {
    const row = await rowById(this.store.db, 'placement_plans', id, `no plan ${id}`);
    return viewOf(row);
  }

  async list(options: { kind?: PlanKind; state?: PlanState; limit: number }): Promise<PlanView[]> {
    let query = this.store.db.selectFrom('placement_plans').selectAll();
    if (options.kind) query = query.where('kind', '=', options.kind);
    if (options.state) query = query.where('state', '=', options.state);
    return (await query.orderBy('id', 'desc').limit(options.limit).execute()).map(viewOf);
  }

  async update(
    id: string,
    changes: { state?: PlanState; taskId?: string; document?: PlanDocument },
  ): Promise<void> {
    await this.store.db
      .updateTable('placement_plans')
      .set({
        ...(changes.state ? { state: changes.state } : {}),
        ...(changes.taskId ? { task_id: changes.taskId } : {}),
        ...(changes.document ? { document: JSON.stringify(changes.document) } : {}),
        updated_at: this.clock.now(),
      })
      .where('id', '=', id)
      .execute();
  }

  /** Moves a plan from one state to another only if it is still in the first (no double apply). */
  async transition(id: string, from: PlanState, to: PlanState): Promise<boolean> {
    const result = await this.store.db
      .updateTable('placement_plans')
      .set({ state: to, updated_at: this.clock.now() })
      .where('id', '=', id)
      .where('state', '=', from)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}
