/**
 * The store's part of applying a reconcile plan (reconcile-plan.ts), in the
 * caller's transaction: object rows inserted and updated, location intervals
 * closed and opened, allocations recorded.
 */
import type { Tx } from '../../store/store.js';
import { recordAllocations } from './allocation-ledger.js';
import type { LocationLedger } from './location-ledger.js';
import type { ManagedObject } from './model.js';
import { rowOf } from './object-rows.js';
import type { ObjectChange } from './reconcile-plan.js';

const chunk = 400;

/** `previous` answers an object as it was before the plan (the sizes before a change). */
export async function writeChanges(
  tx: Tx,
  changes: ObjectChange[],
  locations: LocationLedger,
  previous: (id: string) => ManagedObject | undefined,
  now: number,
): Promise<void> {
  const inserts = changes
    .filter((c) => c.isNew)
    .map((c) => rowOf(c.object, c.discoveredTags, c.userTags));
  for (let i = 0; i < inserts.length; i += chunk)
    await tx
      .insertInto('objects')
      .values(inserts.slice(i, i + chunk))
      .execute();
  for (const change of changes) {
    if (change.isNew) continue;
    const row = rowOf(change.object, change.discoveredTags, change.userTags);
    await tx
      .updateTable('objects')
      .set({
        name: row.name,
        parent_id: row.parent_id,
        connection_id: row.connection_id,
        external_id: row.external_id,
        tags: row.tags,
        facts: row.facts,
        status: row.status,
        missing_since: row.missing_since,
        updated_at: row.updated_at,
      })
      .where('id', '=', row.id)
      .execute();
  }
  const moves = changes
    .filter((c) => c.location !== undefined)
    .map((c) => ({ vmId: c.object.id, next: c.location ?? null }));
  await locations.record(tx, moves, now);
  await recordAllocations(tx, changes, previous, now);
}
