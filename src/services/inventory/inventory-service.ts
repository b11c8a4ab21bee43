/**
 * Reconciles what drivers report (full discovery snapshots and watch deltas)
 * into the store and the in-memory index: creates, updates, marks missing
 * (never silently deletes), appends location history and publishes events.
 * All writes of one reconcile go into one transaction.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Logger } from '../../core/logger.js';
import { Mutex } from '../../core/mutex.js';
import {
  isDiscoveredVm,
  type DiscoveredObject,
  type ExternalRef,
  type ObjectKind,
  type PowerState,
} from '../../hypervisors/driver.js';
import type { Store, Tx } from '../../store/store.js';
import type { EventBus, NewEvent } from '../events/event-bus.js';
import { InventoryIndex } from './inventory-index.js';
import { LocationLedger } from './location-ledger.js';
import { recordAllocations } from './allocation-ledger.js';
import {
  tagPattern,
  userFactKey,
  type Facts,
  type FactValue,
  type ManagedObject,
} from './model.js';
import { objectOf, rowOf, unionTags } from './object-rows.js';
import { VmHandovers } from './vm-handovers.js';

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
const chunk = 400;

export interface ReconcileResult {
  created: number;
  updated: number;
  missing: number;
  moved: number;
}

interface Change {
  object: ManagedObject;
  discoveredTags: string[];
  userTags: string[];
  isNew: boolean;
  changedKeys: string[];
  location?: { hostId: string | null; powerState: PowerState } | null;
}

export class InventoryService {
  readonly index = new InventoryIndex();
  readonly locations: LocationLedger;
  /** When a VM's identity may move to another connection (a move the control plane runs). */
  readonly handovers: VmHandovers;
  readonly #tags = new Map<string, { discovered: string[]; user: string[] }>();
  /** Facts other services keep on objects (a host's maintenance mode), shown among the computed ones. */
  readonly #overlays = new Map<string, Facts>();
  readonly #mutex = new Mutex();

  constructor(
    private readonly store: Store,
    private readonly events: EventBus,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.locations = new LocationLedger(store);
    this.handovers = new VmHandovers(clock);
  }

  /** Rebuilds the index from the store. */
  async load(): Promise<void> {
    const rows = await this.store.db.selectFrom('objects').selectAll().execute();
    for (const row of rows) {
      const { object, discoveredTags, userTags } = objectOf(row);
      this.#tags.set(object.id, { discovered: discoveredTags, user: userTags });
      this.index.put(object);
    }
    await this.locations.load();
    this.#recomputeAll();
    this.logger.info({ objects: rows.length }, 'inventory loaded');
  }

  get(id: string): ManagedObject {
    const object = this.index.get(id);
    if (!object) throw new ZenithError('ZEN_NOT_FOUND', `no object ${id}`, { id });
    return object;
  }

  /**
   * Finds by id, or by exact name in any kind (a name shared by several objects needs the id).
   * With `visible`, objects it refuses are not there: the answer is the one for a missing object.
   */
  lookup(idOrName: string, visible?: (object: ManagedObject) => boolean): ManagedObject {
    const byId = this.index.get(idOrName);
    if (byId && (visible?.(byId) ?? true)) return byId;
    const named = this.index.query({
      filters: [{ key: 'name', op: '=', values: [idOrName], text: `name=${idOrName}` }],
      limit: 2,
      ...(visible ? { visible } : {}),
    }).items;
    if (named.length === 1) return named[0]!;
    if (named.length > 1)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `more than one object is named '${idOrName}'; use its id`,
        { name: idOrName, ids: named.map((o) => o.id) },
      );
    throw new ZenithError('ZEN_NOT_FOUND', `no object '${idOrName}'`, { idOrName });
  }

  /** Finds by id, or by exact name within a kind; `visible` as for lookup. */
  resolve(
    kind: ObjectKind,
    idOrName: string,
    visible?: (object: ManagedObject) => boolean,
  ): ManagedObject {
    const byId = this.index.get(idOrName);
    if (byId && byId.kind === kind && (visible?.(byId) ?? true)) return byId;
    const named = this.index.query({
      kind,
      filters: [{ key: 'name', op: '=', values: [idOrName], text: `name=${idOrName}` }],
      limit: 2,
      ...(visible ? { visible } : {}),
    }).items;
    if (named.length === 1) return named[0]!;
    if (named.length > 1)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `more than one ${kind} is named '${idOrName}'; use its id`,
        { name: idOrName, ids: named.map((o) => o.id) },
      );
    throw new ZenithError('ZEN_NOT_FOUND', `no ${kind} '${idOrName}'`, { kind, idOrName });
  }

  /** A full snapshot: what the connection no longer reports is marked missing. */
  applySnapshot(connectionId: string, objects: DiscoveredObject[]): Promise<ReconcileResult> {
    return this.#mutex.run(() => this.#reconcile(connectionId, objects, [], true));
  }

  applyChanges(
    connectionId: string,
    upserts: DiscoveredObject[],
    removals: ExternalRef[] = [],
  ): Promise<ReconcileResult> {
    return this.#mutex.run(() => this.#reconcile(connectionId, upserts, removals, false));
  }

  /** A removed connection: its objects stay, marked missing, with their history. */
  markConnectionGone(connectionId: string): Promise<ReconcileResult> {
    const refs = this.index
      .ofConnection(connectionId)
      .filter((o) => o.externalId !== null)
      .map((o) => ({ kind: o.kind, externalId: o.externalId! }));
    return this.#mutex.run(() => this.#reconcile(connectionId, [], refs, false));
  }

  /** An object Zenith itself owns (a resource group): no connection, written by users. */
  async createLocal(input: {
    kind: 'resourceGroup';
    name: string;
    parentId?: string | null;
    tags?: string[];
    facts?: Facts;
  }): Promise<ManagedObject> {
    return this.#mutex.run(async () => {
      if (!/^[a-zA-Z0-9][a-zA-Z0-9 ._:-]{0,127}$/.test(input.name))
        throw new ZenithError('ZEN_BAD_REQUEST', `'${input.name}' is not a valid name`, {
          name: input.name,
        });
      for (const key of Object.keys(input.facts ?? {}))
        if (!userFactKey.test(key))
          throw new ZenithError('ZEN_BAD_REQUEST', `'${key}' is not a user fact (user.<name>)`, {
            key,
          });
      for (const tag of input.tags ?? [])
        if (!tagPattern.test(tag))
          throw new ZenithError('ZEN_BAD_REQUEST', `'${tag}' is not a valid tag`, { tag });
      if (input.parentId) this.get(input.parentId);
      const clash = this.index.query({
        kind: input.kind,
        filters: [{ key: 'name', op: '=', values: [input.name], text: input.name }],
        limit: 1,
      }).items;
      if (clash.length > 0)
        throw new ZenithError('ZEN_CONFLICT', `a ${input.kind} named '${input.name}' exists`, {
          name: input.name,
        });
      const now = this.clock.now();
      const userTags = [...new Set(input.tags ?? [])].sort();
      const object: ManagedObject = {
        id: newId('resourceGroup', now),
        kind: input.kind,
        name: input.name,
        parentId: input.parentId ?? null,
        connectionId: null,
        externalId: null,
        tags: userTags,
        facts: {},
        userFacts: input.facts ?? {},
        computed: {},
        status: 'present',
        missingSince: null,
        createdAt: now,
        updatedAt: now,
      };
      const persisted = await this.store.transaction(async (tx) => {
        await tx
          .insertInto('objects')
          .values(rowOf(object, [], userTags))
          .execute();
        return this.events.persist(tx, [
          {
            type: 'inventory.created',
            objectId: object.id,
            data: { kind: object.kind, name: object.name, parentId: object.parentId },
          },
        ]);
      });
      this.#tags.set(object.id, { discovered: [], user: userTags });
      this.index.put(object);
      this.events.deliver(persisted);
      return object;
    });
  }

  /** Deletes an object Zenith owns; discovered objects are never deleted, only marked missing. */
  async deleteLocal(id: string): Promise<ManagedObject> {
    return this.#mutex.run(async () => {
      const object = this.get(id);
      if (object.connectionId !== null)
        throw new ZenithError(
          'ZEN_CONFLICT',
          `${object.name} comes from a connection and cannot be deleted here`,
        );
      if (this.index.children(id).length > 0)
        throw new ZenithError('ZEN_CONFLICT', `${object.name} still has children`);
      const persisted = await this.store.transaction(async (tx) => {
        await tx.deleteFrom('objects').where('id', '=', id).execute();
        return this.events.persist(tx, [
          {
            type: 'inventory.deleted',
            objectId: id,
            data: { kind: object.kind, name: object.name, parentId: object.parentId },
          },
        ]);
      });
      this.index.remove(id);
      this.#tags.delete(id);
      this.events.deliver(persisted);
      return object;
    });
  }

  /** Sets (or with null clears) the facts a service keeps on an object; they join its computed facts. */
  setOverlay(id: string, facts: Facts | null): void {
    const previous = this.#overlays.get(id) ?? {};
    if (facts && Object.keys(facts).length > 0) this.#overlays.set(id, facts);
    else this.#overlays.delete(id);
    const object = this.index.get(id);
    if (!object) return;
    const computed: Facts = { ...object.computed };
    for (const key of Object.keys(previous)) delete computed[key];
    this.index.put({ ...object, computed: { ...computed, ...(facts ?? {}) } });
  }

  /**
   * Sets (null: removes) user facts and tags. `facts` may be computed from the object as it is
   * inside the inventory's lock, so that read-modify-write edits (a list of members) lose nothing.
   */
  async setUserFacts(
    id: string,
    facts: Record<string, FactValue> | ((current: ManagedObject) => Record<string, FactValue>),
    tags: { add?: string[]; remove?: string[] },
  ): Promise<ManagedObject> {
    return this.#mutex.run(async () => {
      const current = this.get(id);
      const userFacts: Facts = { ...current.userFacts };
      const changes = typeof facts === 'function' ? facts(current) : facts;
      for (const [key, value] of Object.entries(changes)) {
        if (!userFactKey.test(key)) {
          throw new ZenithError(
            Object.hasOwn(current.facts, key) || Object.hasOwn(current.computed, key)
              ? 'ZEN_READ_ONLY_FACT'
              : 'ZEN_BAD_REQUEST',
            `'${key}' is not writable: user facts are named user.<name>`,
            { key },
          );
        }
        if (value === null) delete userFacts[key];
        else userFacts[key] = value;
      }
      for (const tag of [...(tags.add ?? []), ...(tags.remove ?? [])]) {
        if (!tagPattern.test(tag))
          throw new ZenithError(
            'ZEN_BAD_REQUEST',
            `'${tag}' is not a valid tag (letters, digits and _.:/=- , at most 128)`,
            { tag },
          );
      }
      const stored = this.#tags.get(id) ?? { discovered: [], user: [] };
      const userTags = unionTags(
        stored.user.filter((t) => !(tags.remove ?? []).includes(t)),
        tags.add ?? [],
      );
      const next: ManagedObject = {
        ...current,
        userFacts,
        tags: unionTags(stored.discovered, userTags),
        updatedAt: this.clock.now(),
      };
      const persisted = await this.store.transaction(async (tx) => {
        await tx
          .updateTable('objects')
          .set({
            user_facts: JSON.stringify(userFacts),
            tags: rowOf(next, stored.discovered, userTags).tags,
            updated_at: next.updatedAt,
          })
          .where('id', '=', id)
          .execute();
        return this.events.persist(tx, [
          {
            type: 'inventory.updated',
            objectId: id,
            data: { kind: next.kind, name: next.name, changed: ['userFacts', 'tags'] },
          },
        ]);
      });
      this.#tags.set(id, { discovered: stored.discovered, user: userTags });
      this.index.put(next);
      this.events.deliver(persisted);
      return next;
    });
  }

  async #reconcile(
    connectionId: string,
    objects: DiscoveredObject[],
    removals: ExternalRef[],
    full: boolean,
  ): Promise<ReconcileResult> {
    const now = this.clock.now();
    const sorted = [...objects].sort((a, b) => kindRank[a.kind] - kindRank[b.kind]);
    const idsInBatch = new Map<string, string>();
    const changes: Change[] = [];
    const seen = new Set<string>();
    /** VMs another connection has by the same UUID, with no move under way: second claimants. */
    const conflicts: Array<{ claimantId: string; vm: ManagedObject; uuid: string }> = [];
    const idFor = (ref: ExternalRef): string | null =>
      idsInBatch.get(InventoryIndex.externalKey(connectionId, ref.kind, ref.externalId)) ??
      this.index.idForExternal(connectionId, ref.kind, ref.externalId) ??
      null;

    for (const discovered of sorted) {
      const key = InventoryIndex.externalKey(connectionId, discovered.kind, discovered.externalId);
      const existingId = this.index.idForExternal(
        connectionId,
        discovered.kind,
        discovered.externalId,
      );
      // A VM that moved between connections (live migration between hosts) keeps its identity by
      // its UUID — only when the control plane moves it there (vm-handovers.ts).
      const known = existingId ? this.index.get(existingId) : undefined;
      const twin = known ? undefined : this.#sameVmElsewhere(discovered, connectionId);
      const movedHere = twin && this.handovers.isExpected(twin.id, connectionId) ? twin : undefined;
      // The last report of a VM its old host is letting go of: not a second VM.
      if (twin && !movedHere && this.handovers.isMoving(twin.id)) continue;
      const existing = known ?? movedHere;
      const id =
        existing?.id ??
        newId(discovered.kind === 'resourceGroup' ? 'resourceGroup' : discovered.kind, now);
      if (twin && !movedHere)
        conflicts.push({ claimantId: id, vm: twin, uuid: String(discovered.facts['vm.uuid']) });
      idsInBatch.set(key, id);
      seen.add(id);
      const parentId = discovered.parent ? idFor(discovered.parent) : null;
      const stored = this.#tags.get(id) ?? { discovered: [], user: [] };
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
      let location: Change['location'];
      if (isDiscoveredVm(discovered)) {
        const hostId = discovered.hostExternalId
          ? idFor({ kind: 'host', externalId: discovered.hostExternalId })
          : null;
        const open = this.locations.openInterval(id);
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
    if (full)
      for (const object of this.index.ofConnection(connectionId))
        if (!seen.has(object.id) && object.status === 'present') gone.push(object);
    for (const ref of removals) {
      const id = this.index.idForExternal(connectionId, ref.kind, ref.externalId);
      const object = id ? this.index.get(id) : undefined;
      if (object && object.status === 'present') gone.push(object);
    }
    for (const object of gone) {
      const stored = this.#tags.get(object.id) ?? { discovered: [], user: [] };
      changes.push({
        isNew: false,
        changedKeys: ['status'],
        discoveredTags: stored.discovered,
        userTags: stored.user,
        location: object.kind === 'vm' ? null : undefined,
        object: { ...object, status: 'missing', missingSince: now, updatedAt: now },
      } as Change);
    }
    if (changes.length === 0) return { created: 0, updated: 0, missing: 0, moved: 0 };

    const result: ReconcileResult = { created: 0, updated: 0, missing: gone.length, moved: 0 };
    const events: NewEvent[] = [];
    for (const change of changes) {
      const { object } = change;
      if (change.isNew) result.created++;
      else if (object.status === 'present') result.updated++;
      const previousHost = this.locations.openInterval(object.id)?.hostId;
      if (change.location && previousHost !== undefined && previousHost !== change.location.hostId)
        result.moved++;
      if (changes.length <= perObjectEventLimit) {
        const type = change.isNew
          ? 'inventory.created'
          : object.status === 'missing'
            ? 'inventory.missing'
            : 'inventory.updated';
        const data: Record<string, unknown> = {
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
            previousHostId: previousHost ?? null,
          };
        events.push({ type, objectId: object.id, data });
      }
    }
    if (changes.length > perObjectEventLimit)
      events.push({ type: 'inventory.synced', data: { connectionId, ...result } });
    for (const conflict of conflicts) {
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
      this.logger.warn(
        {
          uuid: conflict.uuid,
          vmId: conflict.vm.id,
          claimantId: conflict.claimantId,
          connectionId,
        },
        'a second connection reports a VM with the UUID of a known one: kept apart as a conflict',
      );
    }

    const persisted = await this.store.transaction(async (tx) => {
      await this.#write(tx, changes, now);
      return this.events.persist(tx, events);
    });
    const previousParents = new Set<string>();
    for (const change of changes) {
      const parent = this.index.get(change.object.id)?.parentId;
      if (parent) previousParents.add(parent);
      this.#tags.set(change.object.id, {
        discovered: change.discoveredTags,
        user: change.userTags,
      });
      this.index.put(change.object);
    }
    this.locations.commit();
    this.#recompute(
      changes.map((c) => c.object),
      previousParents,
    );
    this.events.deliver(persisted);
    if (result.created + result.missing + result.moved > 0)
      this.logger.info({ connectionId, ...result }, 'inventory reconciled');
    return result;
  }

  async #write(tx: Tx, changes: Change[], now: number): Promise<void> {
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
    await this.locations.record(tx, moves, now);
    // The index still holds the objects as they were: the sizes before the change.
    await recordAllocations(tx, changes, (id) => this.index.get(id), now);
  }

  #sameVmElsewhere(discovered: DiscoveredObject, connectionId: string): ManagedObject | undefined {
    const uuid = discovered.facts['vm.uuid'];
    if (discovered.kind !== 'vm' || typeof uuid !== 'string' || uuid === '') return undefined;
    return this.index
      .query({
        kind: 'vm',
        filters: [{ key: 'vm.uuid', op: '=', values: [uuid], text: `vm.uuid=${uuid}` }],
        limit: 2,
      })
      .items.find((vm) => vm.connectionId !== connectionId);
  }

  #recomputeAll(): void {
    this.#recompute(this.index.ofKind('vm'));
  }

  /** Present VMs of other connections with the same UUID as this one (none for a missing VM). */
  #uuidTwins(vm: ManagedObject): ManagedObject[] {
    const uuid = vm.facts['vm.uuid'];
    if (typeof uuid !== 'string' || uuid === '' || vm.status !== 'present') return [];
    return this.index
      .withFact('vm.uuid', uuid)
      .filter((other) => other.id !== vm.id && other.kind === 'vm' && other.status === 'present');
  }

  /** Computed facts: a VM's location.* and UUID conflicts, a host's VM counts and allocations. */
  #recompute(changed: ManagedObject[], previousParents: Set<string> = new Set()): void {
    const hosts = new Set<string>(previousParents);
    // A VM whose UUID twin came or went shows the conflict (or its end) too.
    const vms = new Map<string, ManagedObject>();
    for (const object of changed) {
      if (object.kind !== 'vm') continue;
      vms.set(object.id, object);
      const uuid = object.facts['vm.uuid'];
      if (typeof uuid === 'string' && uuid !== '')
        for (const twin of this.index.withFact('vm.uuid', uuid))
          if (twin.kind === 'vm') vms.set(twin.id, twin);
    }
    for (const object of changed) if (object.kind === 'host') hosts.add(object.id);
    for (const object of vms.values()) {
      const hostId = this.locations.openInterval(object.id)?.hostId ?? null;
      const host = hostId ? this.index.get(hostId) : undefined;
      const cluster = host?.parentId ? this.index.get(host.parentId) : undefined;
      const datacenter = cluster?.parentId ? this.index.get(cluster.parentId) : undefined;
      const computed: Facts = {
        'location.hostId': hostId,
        'location.hostName': host?.name ?? null,
        'location.clusterId': cluster?.kind === 'cluster' ? cluster.id : null,
        'location.datacenterId':
          datacenter?.kind === 'datacenter'
            ? datacenter.id
            : cluster?.kind === 'datacenter'
              ? cluster.id
              : null,
      };
      const twins = this.#uuidTwins(this.index.get(object.id) ?? object);
      if (twins.length > 0) computed['vm.uuidConflict'] = twins.map((twin) => twin.id);
      this.index.put({ ...this.index.get(object.id)!, computed });
      if (hostId) hosts.add(hostId);
    }
    for (const hostId of hosts) {
      const host = this.index.get(hostId);
      if (host?.kind !== 'host') continue;
      const vms = this.index
        .children(hostId)
        .filter((vm) => vm.kind === 'vm' && vm.status === 'present');
      const running = vms.filter((vm) => vm.facts['power.state'] === 'running');
      const sum = (key: string) =>
        running.reduce(
          (total, vm) => total + (typeof vm.facts[key] === 'number' ? vm.facts[key] : 0),
          0,
        );
      this.index.put({
        ...host,
        computed: {
          'vms.total': vms.length,
          'vms.running': running.length,
          'cpu.allocated': sum('cpu.count'),
          'memory.allocatedBytes': sum('memory.bytes'),
          ...this.#overlays.get(hostId),
        },
      });
    }
  }
}
