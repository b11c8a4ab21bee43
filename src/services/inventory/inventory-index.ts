/**
 * The in-memory index of the inventory, rebuilt from the store at start.
 * Reads and fact filters are answered here, never by a table scan per request:
 * kind, tag and parent sets, equality indexes per fact (built on first use and
 * kept up to date), and a name-ordered list per kind for cursor pages.
 */
import { ZenithError } from '../../core/errors.js';
import { indexKeys, matches, type FilterTerm } from './filter.js';
import { factOf, type FactValue, type ManagedObject, type ObjectKind } from './model.js';

export interface QueryOptions {
  kind?: ObjectKind | undefined;
  filters?: FilterTerm[];
  tags?: string[];
  /** A fact key or 'name'; prefix '-' for descending. */
  sort?: string | undefined;
  cursor?: string | undefined;
  limit: number;
  /** Objects the caller may see; all when absent. */
  visible?: (object: ManagedObject) => boolean;
}

export interface QueryResult {
  items: ManagedObject[];
  nextCursor: string | null;
}

type CursorKey = [FactValue | undefined, string];

/** Absent and null sort last, and alike: a cursor carries an absent value as null (JSON). */
function compareValues(a: FactValue | undefined, b: FactValue | undefined): number {
  if (a === b || ((a === undefined || a === null) && (b === undefined || b === null))) return 0;
  if (a === undefined || a === null) return 1;
  if (b === undefined || b === null) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const left = Array.isArray(a) ? a.join(',') : String(a);
  const right = Array.isArray(b) ? b.join(',') : String(b);
  return left < right ? -1 : left > right ? 1 : 0;
}

/** What a query sorts by: the name, or a fact (any fact key `factOf` answers). */
function sortValue(object: ManagedObject, key: string): FactValue | undefined {
  return key === 'name' ? object.name : factOf(object, key);
}

/** How many sort orders the index keeps (each is one id per object of its kind). */
const keptOrders = 16;

function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

function decodeCursor(cursor: string): CursorKey {
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(key) && key.length === 2 && typeof key[1] === 'string')
      return key as CursorKey;
  } catch {
    // fall through
  }
  throw new ZenithError('ZEN_BAD_CURSOR', 'the cursor is not one this server issued', { cursor });
}

export class InventoryIndex {
  readonly #byId = new Map<string, ManagedObject>();
  readonly #byExternal = new Map<string, string>();
  readonly #byKind = new Map<ObjectKind, Set<string>>();
  readonly #byTag = new Map<string, Set<string>>();
  readonly #children = new Map<string, Set<string>>();
  readonly #factIndexes = new Map<string, Map<string, Set<string>>>();
  /**
   * Kept sort orders: the ids of one kind by (name or a fact, id), ascending or descending, built
   * on first use and dropped when an object of that kind comes, goes or changes its sort value.
   * At most `keptOrders`; the least recently used goes first.
   */
  readonly #orders = new Map<string, { kind: ObjectKind; key: string; ids: string[] }>();
  /** Bumped whenever an object of the kind comes, goes or changes: lets readers keep derived views. */
  readonly #kindVersions = new Map<ObjectKind, number>();

  static externalKey(connectionId: string, kind: ObjectKind, externalId: string): string {
    return `${connectionId}\u0000${kind}\u0000${externalId}`;
  }

  get size(): number {
    return this.#byId.size;
  }

  get(id: string): ManagedObject | undefined {
    return this.#byId.get(id);
  }

  /** A number that changes whenever an object of this kind is put or removed. */
  kindVersion(kind: ObjectKind): number {
    return this.#kindVersions.get(kind) ?? 0;
  }

  #bump(kind: ObjectKind): void {
    this.#kindVersions.set(kind, this.kindVersion(kind) + 1);
  }

  idForExternal(connectionId: string, kind: ObjectKind, externalId: string): string | undefined {
    return this.#byExternal.get(InventoryIndex.externalKey(connectionId, kind, externalId));
  }

  children(id: string): ManagedObject[] {
    return [...(this.#children.get(id) ?? [])].map((childId) => this.#byId.get(childId)!);
  }

  ofKind(kind: ObjectKind): ManagedObject[] {
    return [...(this.#byKind.get(kind) ?? [])].map((id) => this.#byId.get(id)!);
  }

  ofConnection(connectionId: string): ManagedObject[] {
    return [...this.#byId.values()].filter((o) => o.connectionId === connectionId);
  }

  /** Inserts or replaces an object, keeping every index in step. */
  put(object: ManagedObject): void {
    const previous = this.#byId.get(object.id);
    if (previous) this.#unindex(previous);
    this.#byId.set(object.id, object);
    this.#bump(object.kind);
    if (previous && previous.kind !== object.kind) this.#bump(previous.kind);
    if (object.connectionId && object.externalId)
      this.#byExternal.set(
        InventoryIndex.externalKey(object.connectionId, object.kind, object.externalId),
        object.id,
      );
    addTo(this.#byKind, object.kind, object.id);
    for (const tag of object.tags) addTo(this.#byTag, tag, object.id);
    if (object.parentId) addTo(this.#children, object.parentId, object.id);
    for (const [key, index] of this.#factIndexes)
      for (const value of indexKeys(factOf(object, key))) addTo(index, value, object.id);
    for (const [id, order] of this.#orders) {
      if (order.kind !== object.kind && order.kind !== previous?.kind) continue;
      if (
        !previous ||
        previous.kind !== object.kind ||
        compareValues(sortValue(previous, order.key), sortValue(object, order.key)) !== 0
      )
        this.#orders.delete(id);
    }
  }

  remove(id: string): void {
    const previous = this.#byId.get(id);
    if (!previous) return;
    this.#unindex(previous);
    this.#byId.delete(id);
    this.#bump(previous.kind);
    for (const [orderId, order] of this.#orders)
      if (order.kind === previous.kind) this.#orders.delete(orderId);
  }

  query(options: QueryOptions): QueryResult {
    const filters = options.filters ?? [];
    const tags = options.tags ?? [];
    const descending = options.sort?.startsWith('-') ?? false;
    const sortKey = (options.sort ?? 'name').replace(/^-/, '');
    const after = options.cursor ? decodeCursor(options.cursor) : undefined;
    const limit = Math.max(1, options.limit);

    // Narrow with the most selective index available: tags, then fact equality.
    const sets: Set<string>[] = [];
    if (options.kind) sets.push(this.#byKind.get(options.kind) ?? new Set());
    for (const tag of tags) sets.push(this.#byTag.get(tag) ?? new Set());
    for (const term of filters) if (term.op === '=') sets.push(this.#equalitySet(term));
    const remaining = filters.filter((term) => term.op !== '=');
    // The caller's access is the costly check: asked last, and only of objects a page may take.
    const visible = options.visible ?? (() => true);
    const matchesFilters = (object: ManagedObject) =>
      remaining.every((term) => matches(object, term));
    const accept = (object: ManagedObject) => matchesFilters(object) && visible(object);

    const keyOf = (object: ManagedObject): CursorKey => [sortValue(object, sortKey), object.id];
    const compare = (a: CursorKey, b: CursorKey) => {
      const byValue = compareValues(a[0], b[0]);
      const order = byValue !== 0 ? byValue : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
      return descending ? -order : order;
    };

    let page: ManagedObject[];
    const smallest = sets.sort((a, b) => a.size - b.size)[0];
    // A kept order of the kind by this key is walked when that is cheaper than sorting; one is
    // built when the candidates are at least a quarter of the kind (sorting them would cost about
    // as much, and a page walks at most about 4 × its size).
    const ordered = options.kind
      ? this.#order(
          options.kind,
          sortKey,
          descending,
          (smallest?.size ?? 0) * 4 >= (this.#byKind.get(options.kind)?.size ?? 0),
          keyOf,
          compare,
        )
      : undefined;
    // Walking a kept order costs about limit × total ÷ matches steps; sorting the candidates
    // costs about n·log n. Take the cheaper one.
    const walkSteps =
      smallest && smallest.size > 0
        ? ((limit + 1) * (ordered?.length ?? 0)) / smallest.size
        : Infinity;
    const sortSteps = smallest ? smallest.size * Math.log2(smallest.size + 2) : Infinity;
    if (ordered && (!smallest || walkSteps < sortSteps)) {
      // Walk the name order from the cursor and stop once the page is full.
      page = [];
      let start = 0;
      if (after) {
        let low = 0;
        let high = ordered.length;
        while (low < high) {
          const mid = (low + high) >> 1;
          if (compare(keyOf(this.#byId.get(ordered[mid]!)!), after) <= 0) low = mid + 1;
          else high = mid;
        }
        start = low;
      }
      for (let i = start; i < ordered.length && page.length <= limit; i++) {
        const id = ordered[i]!;
        if (!sets.every((set) => set.has(id))) continue;
        const object = this.#byId.get(id)!;
        if (accept(object)) page.push(object);
      }
    } else {
      const base = smallest ?? new Set(this.#byId.keys());
      const others = sets.filter((set) => set !== base);
      // Each candidate's sort key is read once; access is checked in sorted order until the page
      // is full, so a caller who sees most objects pays for a page, not for the whole fleet.
      const candidates: Array<{ object: ManagedObject; key: CursorKey }> = [];
      for (const id of base) {
        if (!others.every((set) => set.has(id))) continue;
        const object = this.#byId.get(id)!;
        if (!matchesFilters(object)) continue;
        const key = keyOf(object);
        if (!after || compare(key, after) > 0) candidates.push({ object, key });
      }
      candidates.sort((a, b) => compare(a.key, b.key));
      page = [];
      for (const { object } of candidates) {
        if (page.length > limit) break;
        if (visible(object)) page.push(object);
      }
    }
    const hasMore = page.length > limit;
    const items = page.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: hasMore && last ? encodeCursor(keyOf(last)) : null };
  }

  /** The objects whose fact `key` equals `value` (or holds it, for a list), by the equality index. */
  withFact(key: string, value: string): ManagedObject[] {
    const ids = this.#equalitySet({ key, op: '=', values: [value], text: `${key}=${value}` });
    return [...ids].map((id) => this.#byId.get(id)!);
  }

  #equalitySet(term: FilterTerm): Set<string> {
    let index = this.#factIndexes.get(term.key);
    if (!index) {
      index = new Map();
      for (const object of this.#byId.values())
        for (const value of indexKeys(factOf(object, term.key))) addTo(index, value, object.id);
      this.#factIndexes.set(term.key, index);
    }
    const forms = new Set<string>();
    for (const wanted of term.values) {
      forms.add(wanted);
      if (wanted.trim() !== '' && Number.isFinite(Number(wanted)))
        forms.add(String(Number(wanted)));
    }
    const found = [...forms].map((form) => index.get(form)).filter((set) => set !== undefined);
    // One value: the index's own set (read-only here), no copy per request.
    if (found.length <= 1) return found[0] ?? new Set();
    const out = new Set<string>();
    for (const set of found) for (const id of set) out.add(id);
    return out;
  }

  #order(
    kind: ObjectKind,
    key: string,
    descending: boolean,
    build: boolean,
    keyOf: (object: ManagedObject) => CursorKey,
    compare: (a: CursorKey, b: CursorKey) => number,
  ): string[] | undefined {
    const id = `${kind}\u0000${key}\u0000${descending ? 'desc' : 'asc'}`;
    const kept = this.#orders.get(id);
    if (kept) {
      // Most recently used last.
      this.#orders.delete(id);
      this.#orders.set(id, kept);
      return kept.ids;
    }
    if (!build && key !== 'name') return undefined;
    const keyed = this.ofKind(kind).map((object) => ({ id: object.id, key: keyOf(object) }));
    keyed.sort((a, b) => compare(a.key, b.key));
    const ids = keyed.map((entry) => entry.id);
    this.#orders.set(id, { kind, key, ids });
    for (const oldest of this.#orders.keys()) {
      if (this.#orders.size <= keptOrders) break;
      this.#orders.delete(oldest);
    }
    return ids;
  }

  #unindex(object: ManagedObject): void {
    if (object.connectionId && object.externalId)
      this.#byExternal.delete(
        InventoryIndex.externalKey(object.connectionId, object.kind, object.externalId),
      );
    this.#byKind.get(object.kind)?.delete(object.id);
    for (const tag of object.tags) this.#byTag.get(tag)?.delete(object.id);
    if (object.parentId) this.#children.get(object.parentId)?.delete(object.id);
    for (const [key, index] of this.#factIndexes)
      for (const value of indexKeys(factOf(object, key))) index.get(value)?.delete(object.id);
  }
}

function addTo<K>(map: Map<K, Set<string>>, key: K, id: string): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(id);
}
