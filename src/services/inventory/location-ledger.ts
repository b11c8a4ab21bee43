/**
 * Location history: one row per interval a VM spent on a host in one power
 * state. The open interval of every VM is kept in memory; the table is the
 * source of truth for "where was it at time T".
 */
import type { PowerState } from '../../hypervisors/driver.js';
import type { Selectable } from 'kysely';
import type { LocationHistoryTable } from '../../store/schema.js';
import type { Store, Tx } from '../../store/store.js';
import type { LocationInterval } from './model.js';

export interface OpenInterval {
  rowId: number;
  hostId: string | null;
  powerState: PowerState;
  from: number;
}

export interface LocationMove {
  vmId: string;
  /** null closes the VM's interval without opening one (the VM is missing). */
  next: { hostId: string | null; powerState: PowerState } | null;
}

const insertChunk = 400;

/** A move Zenith makes itself and names (a failover): how the next interval of the VM is recorded. */
export interface ExpectedMove {
  reason: string;
  /** The interval it leaves ends then (the host's failure), not when the move is seen. */
  leftAt?: number;
}

export class LocationLedger {
  readonly #open = new Map<string, OpenInterval>();
  #staged: Map<string, OpenInterval | null> | undefined;
  /** vm id → how its next move is recorded (until that move is seen). */
  readonly #expected = new Map<string, ExpectedMove>();

  constructor(private readonly store: Store) {}

  /**
   * The VM's next move is one Zenith makes for a reason (a restart after its host failed): the
   * interval it leaves ends at `leftAt` (when given), the one it opens carries the reason.
   */
  expect(vmId: string, move: ExpectedMove): () => void {
    this.#expected.set(vmId, move);
    return () => {
      if (this.#expected.get(vmId) === move) this.#expected.delete(vmId);
    };
  }

  async load(): Promise<void> {
    const rows = await this.store.db
      .selectFrom('location_history')
      .selectAll()
      .where('to_ts', 'is', null)
      .execute();
    for (const row of rows)
      this.#open.set(row.vm_id, {
        rowId: Number(row.id),
        hostId: row.host_id,
        powerState: row.power_state as PowerState,
        from: Number(row.from_ts),
      });
  }

  openInterval(vmId: string): OpenInterval | undefined {
    return this.#open.get(vmId);
  }

  /** Writes the moves in the caller's transaction; commit() makes them visible once it has committed. */
  async record(tx: Tx, moves: LocationMove[], now: number): Promise<void> {
    const staged = new Map<string, OpenInterval | null>();
    const closing = moves
      .map((m) => this.#open.get(m.vmId))
      .filter((o): o is OpenInterval => o !== undefined);
    const moved = (m: LocationMove) =>
      m.next !== null && this.#open.get(m.vmId)?.hostId !== m.next.hostId;
    const expected = new Map(
      moves
        .filter((m) => this.#expected.has(m.vmId) && moved(m))
        .map((m) => [m.vmId, this.#expected.get(m.vmId)!]),
    );
    for (let i = 0; i < closing.length; i += insertChunk) {
      const ids = closing.slice(i, i + insertChunk).map((o) => o.rowId);
      await tx.updateTable('location_history').set({ to_ts: now }).where('id', 'in', ids).execute();
    }
    // A named move's interval ends when it was left (the host's failure), never before it began.
    for (const [vmId, move] of expected) {
      const open = this.#open.get(vmId);
      if (open && move.leftAt !== undefined)
        await tx
          .updateTable('location_history')
          .set({ to_ts: Math.min(now, Math.max(open.from, move.leftAt)) })
          .where('id', '=', open.rowId)
          .execute();
    }
    const opening = moves.filter((m) => m.next !== null);
    for (let i = 0; i < opening.length; i += insertChunk) {
      const part = opening.slice(i, i + insertChunk);
      const rows = await tx
        .insertInto('location_history')
        .values(
          part.map((m) => ({
            vm_id: m.vmId,
            host_id: m.next!.hostId,
            power_state: m.next!.powerState,
            from_ts: now,
            to_ts: null,
            reason: expected.get(m.vmId)?.reason ?? null,
          })),
        )
        .returning('id')
        .execute();
      rows.forEach((row, index) => {
        const move = part[index]!;
        staged.set(move.vmId, {
          rowId: Number(row.id),
          hostId: move.next!.hostId,
          powerState: move.next!.powerState,
          from: now,
        });
      });
    }
    for (const move of moves) if (move.next === null) staged.set(move.vmId, null);
    this.#staged = staged;
    this.#stagedExpected = [...expected.keys()];
  }

  #stagedExpected: string[] = [];

  commit(): void {
    for (const [vmId, interval] of this.#staged ?? []) {
      if (interval) this.#open.set(vmId, interval);
      else this.#open.delete(vmId);
    }
    for (const vmId of this.#stagedExpected) this.#expected.delete(vmId);
    this.#staged = undefined;
    this.#stagedExpected = [];
  }

  async history(
    vmId: string,
    options: { from?: number; to?: number; limit?: number } = {},
  ): Promise<LocationInterval[]> {
    let query = this.store.db.selectFrom('location_history').selectAll().where('vm_id', '=', vmId);
    if (options.from !== undefined)
      query = query.where((eb) =>
        eb.or([eb('to_ts', 'is', null), eb('to_ts', '>', options.from!)]),
      );
    if (options.to !== undefined) query = query.where('from_ts', '<', options.to);
    const rows = await query
      .orderBy('from_ts', 'desc')
      .orderBy('id', 'desc')
      .limit(options.limit ?? 1000)
      .execute();
    return rows.map(intervalOf);
  }

  /** The interval that covers time `at`, or null when Zenith did not know the VM then. */
  async at(vmId: string, at: number): Promise<LocationInterval | null> {
    const row = await this.store.db
      .selectFrom('location_history')
      .selectAll()
      .where('vm_id', '=', vmId)
      .where('from_ts', '<=', at)
      .where((eb) => eb.or([eb('to_ts', 'is', null), eb('to_ts', '>', at)]))
      .orderBy('from_ts', 'desc')
      .orderBy('id', 'desc')
      .executeTakeFirst();
    if (!row) return null;
    return intervalOf(row);
  }
}

/** An interval of the location history, from its row (PostgreSQL may answer bigints as strings). */
function intervalOf(row: Selectable<LocationHistoryTable>): LocationInterval {
  return {
    vmId: row.vm_id,
    hostId: row.host_id,
    powerState: row.power_state as PowerState,
    from: Number(row.from_ts),
    to: row.to_ts === null ? null : Number(row.to_ts),
    ...(row.reason ? { reason: row.reason } : {}),
  };
}
