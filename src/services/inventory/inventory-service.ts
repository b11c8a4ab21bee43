/**
 * Reconciles what drivers report (full discovery snapshots and watch deltas)
 * into the store and the in-memory index: creates, updates, marks missing
 * (never silently deletes), appends location history and publishes events.
 * A reconcile is planned without the store (reconcile-plan.ts), then applied:
 * all its writes in one transaction, then the index and the events.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Logger } from '../../core/logger.js';
import { Mutex } from '../../core/mutex.js';
import type { DiscoveredObject, ExternalRef, ObjectKind } from '../../hypervisors/driver.js';
import type { Store } from '../../store/store.js';
import type { EventBus } from '../events/event-bus.js';
import { recomputeFacts } from './computed-facts.js';
import { InventoryIndex } from './inventory-index.js';
import { LocationLedger } from './location-ledger.js';
import {
  tagPattern,
  userFactKey,
  type Facts,
  type FactValue,
  type ManagedObject,
} from './model.js';
import { objectOf, rowOf, unionTags } from './object-rows.js';
import { planReconcile, type ReconcilePlan, type ReconcileResult } from './reconcile-plan.js';
import { writeChanges } from './reconcile-write.js';
import { VmHandovers } from './vm-handovers.js';

export type { ReconcileResult } from './reconcile-plan.js';

export class InventoryService {
  readonly index = new InventoryIndex();
  readonly locations: LocationLedger;
  /** When a VM's identity may move to another connection (a move the control plane runs). */
  readonly handovers: VmHandovers;
  readonly #tags = new Map<string, { discovered: string[]; user: string[] }>();
  /** Facts other services keep on objects (a host's maintenance mode), shown among the computed ones. */
  /** Facts services keep on objects, by object id and then by the service (source) keeping them. */
  readonly #overlays = new Map<string, Map<string, Facts>>();
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
    this.#recompute(this.index.ofKind('vm'));
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
    const named = this.#onlyNamed(idOrName, undefined, visible);
    if (named) return named;
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
    const named = this.#onlyNamed(idOrName, kind, visible);
    if (named) return named;
    throw new ZenithError('ZEN_NOT_FOUND', `no ${kind} '${idOrName}'`, { kind, idOrName });
  }

  /**
   * The one object (of `kind` when given) of this exact name that `visible` lets through;
   * undefined when there is none, ZEN_CONFLICT when there are several (the caller needs the id).
   */
  #onlyNamed(
    name: string,
    kind: ObjectKind | undefined,
    visible: ((object: ManagedObject) => boolean) | undefined,
  ): ManagedObject | undefined {
    const named = this.index.query({
      ...(kind ? { kind } : {}),
      filters: [{ key: 'name', op: '=', values: [name], text: `name=${name}` }],
      limit: 2,
      ...(visible ? { visible } : {}),
    }).items;
    if (named.length > 1)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `more than one ${kind ?? 'object'} is named '${name}'; use its id`,
        { name, ids: named.map((o) => o.id) },
      );
    return named[0];
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

  /**
   * Sets (or with null clears) the facts a service (`source`) keeps on an object; they join its
   * computed facts beside those other services keep.
   */
  setOverlay(source: string, id: string, facts: Facts | null): void {
    const sources = this.#overlays.get(id) ?? new Map<string, Facts>();
    const previous = sources.get(source) ?? {};
    if (facts && Object.keys(facts).length > 0) sources.set(source, facts);
    else sources.delete(source);
    if (sources.size > 0) this.#overlays.set(id, sources);
    else this.#overlays.delete(id);
    const object = this.index.get(id);
    if (!object) return;
    const computed: Facts = { ...object.computed };
    for (const key of Object.keys(previous)) delete computed[key];
    this.index.put({ ...object, computed: { ...computed, ...this.#overlayOf(id) } });
  }

  #overlayOf(id: string): Facts | undefined {
    const sources = this.#overlays.get(id);
    if (!sources) return undefined;
    const merged: Facts = {};
    for (const facts of sources.values()) Object.assign(merged, facts);
    return merged;
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

  /** Plans a reconcile against the inventory as it is, then applies it (reconcile-plan.ts). */
  async #reconcile(
    connectionId: string,
    objects: DiscoveredObject[],
    removals: ExternalRef[],
    full: boolean,
  ): Promise<ReconcileResult> {
    const now = this.clock.now();
    const plan = planReconcile(
      {
        index: this.index,
        tags: (id) => this.#tags.get(id),
        openInterval: (vmId) => this.locations.openInterval(vmId),
        handovers: this.handovers,
      },
      {
        connectionId,
        objects,
        removals,
        full,
        now,
        newId: (kind) => newId(kind, now),
      },
    );
    if (plan.changes.length > 0) await this.#apply(connectionId, plan, now);
    return plan.result;
  }

  /** Writes a plan in one transaction; then the index, the location ledger and the events follow. */
  async #apply(connectionId: string, plan: ReconcilePlan, now: number): Promise<void> {
    const { changes, result } = plan;
    for (const conflict of plan.conflicts)
      this.logger.warn(
        {
          uuid: conflict.uuid,
          vmId: conflict.vm.id,
          claimantId: conflict.claimantId,
          connectionId,
        },
        'a second connection reports a VM with the UUID of a known one: kept apart as a conflict',
      );
    const persisted = await this.store.transaction(async (tx) => {
      // The index still holds the objects as they were: the sizes before the change.
      await writeChanges(tx, changes, this.locations, (id) => this.index.get(id), now);
      return this.events.persist(tx, plan.events);
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
  }

  /** Computed facts: a VM's location.* and UUID conflicts, a host's VM counts and allocations. */
  #recompute(changed: ManagedObject[], previousParents: Set<string> = new Set()): void {
    recomputeFacts(
      {
        index: this.index,
        hostOf: (vmId) => this.locations.openInterval(vmId)?.hostId,
        overlay: (id) => this.#overlayOf(id),
      },
      changed,
      previousParents,
    );
  }
}
