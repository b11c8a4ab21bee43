/**
 * A reconcile as a plan: what a connection reports (a full snapshot, or watch
 * deltas and removals), compared with the inventory as it is, gives the
 * objects to create and update, the ones to mark missing, the location
 * intervals to open and close, the events to publish and the UUID conflicts
 * to report. Planning writes nothing and needs no store: the inventory
 * service applies a plan in one transaction (inventory-service.ts).
 */
import {
  isDiscoveredVm,
  type DiscoveredObject,
  type ExternalRef,
  type ObjectKind,
  type PowerState,
} from '../../hypervisors/driver.js';
import type { EventData } from '../../api/events.js';
import type { NewEvent } from '../events/event-bus.js';
import { InventoryIndex } from './inventory-index.js';
import type { ManagedObject } from './model.js';
import { unionTags } from './object-rows.js';

/** Parents before children: a batch's objects find the ids of parents made in the same batch. */
const kindRank: Record<ObjectKind, number> = {
  datacenter: 0,
  cluster: 1,
  network: 2,
  datastore: 2,
  resourceGroup: 2,
  host: 3,
  vm: 4,
};
/** Above this many changes in one reconcile, one summary event replaces per-object events. */
const perObjectEventLimit = 1000;

export interface ReconcileResult {
  created: number;
  updated: number;
  missing: number;
  moved: number;
}

export interface StoredTags {
  discovered: string[];
  user: string[];
}

/** One object to write: created, updated, or marked missing. */
export interface ObjectChange {
  object: ManagedObject;
  discoveredTags: string[];
  userTags: string[];
  isNew: boolean;
  changedKeys: string[];
  /** A VM's new location interval; null closes it (the VM is missing); absent: unchanged. */
  location?: { hostId: string | null; powerState: PowerState } | null;
}

/** A VM another connection reports with the UUID of a known one, no move under way: kept apart. */
export interface UuidConflict {
  claimantId: string;
  vm: ManagedObject;
  uuid: string;
}

export interface ReconcilePlan {
  changes: ObjectChange[];
  conflicts: UuidConflict[];
  events: NewEvent[];
  result: ReconcileResult;
}

/** What a plan reads of the inventory as it is. */
export interface InventoryView {
  index: Pick<InventoryIndex, 'get' | 'idForExternal' | 'ofConnection' | 'query'>;
  /** The discovered and user tags kept apart for an object. */
  tags(id: string): StoredTags | undefined;
  /** A VM's open location interval. */
  openInterval(vmId: string): { hostId: string | null; powerState: PowerState } | undefined;
  /** When a VM's identity may move to another connection (vm-handovers.ts). */
  handovers: {
    isExpected(vmId: string, connectionId: string): boolean;
    isMoving(vmId: string): boolean;
    isDisowned(vmId: string, connectionId: string): boolean;
  };
}

export interface ReconcileInput {
  connectionId: string;
  /** Created or updated; in a full snapshot, everything the connection has. */
  objects: DiscoveredObject[];
  /** Gone from the connection: marked missing. */
  removals: ExternalRef[];
  /** A full snapshot: what it does not report is missing. */
  full: boolean;
  now: number;
  /** The id a new object gets. */
  newId: (kind: ObjectKind) => string;
}

export function planReconcile(view: InventoryView, input: ReconcileInput): ReconcilePlan {
  const { index } = view;
  const { connectionId, now } = input;
  const sorted = [...input.objects].sort((a, b) => kindRank[a.kind] - kindRank[b.kind]);
  const idsInBatch = new Map<string, string>();
  const changes: ObjectChange[] = [];
  const seen = new Set<string>();
  const conflicts: UuidConflict[] = [];
  const idFor = (ref: ExternalRef): string | null =>
    idsInBatch.get(InventoryIndex.externalKey(connectionId, ref.kind, ref.externalId)) ??
    index.idForExternal(connectionId, ref.kind, ref.externalId) ??
    null;

  for (const discovered of sorted) {
    const key = InventoryIndex.externalKey(connectionId, discovered.kind, discovered.externalId);
    const existingId = index.idForExternal(connectionId, discovered.kind, discovered.externalId);
    // A VM that moved between connections (live migration between hosts) keeps its identity by
    // its UUID — only when the control plane moves it there (vm-handovers.ts).
    const known = existingId ? index.get(existingId) : undefined;
    const twin = known ? undefined : sameVmElsewhere(index, discovered, connectionId);
    const movedHere = twin && view.handovers.isExpected(twin.id, connectionId) ? twin : undefined;
    // The last report of a VM its old host is letting go of: not a second VM.
    if (twin && !movedHere && view.handovers.isMoving(twin.id)) continue;
    // A host a VM failed over away from, back with its stale definition: not a second VM.
    if (twin && !movedHere && view.handovers.isDisowned(twin.id, connectionId)) continue;
    const existing = known ?? movedHere;
    const id = existing?.id ?? input.newId(discovered.kind);
    if (twin && !movedHere)
      conflicts.push({ claimantId: id, vm: twin, uuid: String(discovered.facts['vm.uuid']) });
    idsInBatch.set(key, id);
    seen.add(id);
    const parentId = discovered.parent ? idFor(discovered.parent) : null;
    const stored = view.tags(id) ?? { discovered: [], user: [] };
    const discoveredTags = [...(discovered.tags ?? [])].sort();
    const changedKeys: string[] = [];
    if (existing) {
      if (existing.name !== discovered.name) changedKeys.push('name');
      if (existing.connectionId !== connectionId) changedKeys.push('connection');
      if (existing.parentId !== parentId) changedKeys.push('parent');
      if (existing.status !== 'present') changedKeys.push('status');
      if (discoveredTags.join('\n') !== stored.discovered.join('\n')) changedKeys.push('tags');
      for (const factKey of new Set([
        ...Object.keys(existing.facts),
        ...Object.keys(discovered.facts),
      ])) {
        if (JSON.stringify(existing.facts[factKey]) !== JSON.stringify(discovered.facts[factKey]))
          changedKeys.push(factKey);
      }
    }
    let location: ObjectChange['location'];
    if (isDiscoveredVm(discovered)) {
      const hostId = discovered.hostExternalId
        ? idFor({ kind: 'host', externalId: discovered.hostExternalId })
        : null;
      const open = view.openInterval(id);
      if (!open || open.hostId !== hostId || open.powerState !== discovered.powerState)
        location = { hostId, powerState: discovered.powerState };
    }
    if (existing && changedKeys.length === 0 && location === undefined) continue;
    changes.push({
      isNew: !existing,
      changedKeys,
      discoveredTags,
      userTags: stored.user,
      ...(location !== undefined ? { location } : {}),
      object: {
        id,
        kind: discovered.kind,
        name: discovered.name,
        parentId,
        connectionId,
        externalId: discovered.externalId,
        tags: unionTags(discoveredTags, stored.user),
        facts: discovered.facts,
        userFacts: existing?.userFacts ?? {},
        computed: {},
        status: 'present',
        missingSince: null,
        createdAt: existing?.createdAt ?? now,
        updatedAt: now,
      },
    });
  }

  const gone: ManagedObject[] = [];
  if (input.full)
    for (const object of index.ofConnection(connectionId))
      if (!seen.has(object.id) && object.status === 'present') gone.push(object);
  for (const ref of input.removals) {
    const id = index.idForExternal(connectionId, ref.kind, ref.externalId);
    const object = id ? index.get(id) : undefined;
    if (object && object.status === 'present') gone.push(object);
  }
  for (const object of gone) {
    const stored = view.tags(object.id) ?? { discovered: [], user: [] };
    changes.push({
      isNew: false,
      changedKeys: ['status'],
      discoveredTags: stored.discovered,
      userTags: stored.user,
      // A missing VM's interval closes: it is nowhere Zenith can see.
      ...(object.kind === 'vm' ? { location: null } : {}),
      object: { ...object, status: 'missing', missingSince: now, updatedAt: now },
    });
  }

  const result: ReconcileResult = { created: 0, updated: 0, missing: gone.length, moved: 0 };
  if (changes.length === 0) return { changes, conflicts, events: [], result };
  const events: NewEvent[] = [];
  for (const change of changes) {
    const { object } = change;
    if (change.isNew) result.created++;
    else if (object.status === 'present') result.updated++;
    const previousHost = view.openInterval(object.id)?.hostId;
    if (change.location && previousHost !== undefined && previousHost !== change.location.hostId)
      result.moved++;
    if (changes.length <= perObjectEventLimit)
      events.push(changeEvent(change, connectionId, previousHost ?? null));
  }
  if (changes.length > perObjectEventLimit)
    events.push({ type: 'inventory.synced', data: { connectionId, ...result } });
  for (const conflict of conflicts)
    events.push({
      type: 'inventory.conflict',
      objectId: conflict.claimantId,
      data: {
        kind: 'vm',
        reason: 'uuid',
        uuid: conflict.uuid,
        vmId: conflict.vm.id,
        connectionId,
        vmConnectionId: conflict.vm.connectionId,
      },
    });
  return { changes, conflicts, events, result };
}

function changeEvent(
  change: ObjectChange,
  connectionId: string,
  previousHostId: string | null,
): NewEvent {
  const { object } = change;
  const type = change.isNew
    ? 'inventory.created'
    : object.status === 'missing'
      ? 'inventory.missing'
      : 'inventory.updated';
  const data: EventData<'inventory.updated'> = {
    kind: object.kind,
    name: object.name,
    // Where it is in the tree now: a console showing that level refreshes it.
    parentId: object.parentId,
    connectionId,
  };
  if (!change.isNew) data.changed = change.changedKeys;
  if (change.location)
    data.location = {
      hostId: change.location.hostId,
      powerState: change.location.powerState,
      previousHostId,
    };
  return { type, objectId: object.id, data };
}

/** A present or missing VM of another connection with the same UUID (the first by name). */
function sameVmElsewhere(
  index: InventoryView['index'],
  discovered: DiscoveredObject,
  connectionId: string,
): ManagedObject | undefined {
  const uuid = discovered.facts['vm.uuid'];
  if (discovered.kind !== 'vm' || typeof uuid !== 'string' || uuid === '') return undefined;
  return index
    .query({
      kind: 'vm',
      filters: [{ key: 'vm.uuid', op: '=', values: [uuid], text: `vm.uuid=${uuid}` }],
      limit: 2,
    })
    .items.find((vm) => vm.connectionId !== connectionId);
}
