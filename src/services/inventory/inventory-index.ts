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

function compareValues(a: FactValue | undefined, b: FactValue | undefined): number {
  if (a === b) return 0;
  if (a === undefined || a === null) return 1;
  if (b === undefined || b === null) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const left = Array.isArray(a) ? a.join(',') : String(a);
  const right = Array.isArray(b) ? b.join(',') : String(b);
  return left < right ? -1 : left > right ? 1 : 0;
}

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
  /** Ids per kind ordered by (name, id); null when it must be rebuilt. */
  readonly #nameOrder = new Map<ObjectKind, string[] | null>();

  static externalKey(connectionId: string, kind: ObjectKind, externalId: string): string {
    return `${connectionId}\u0000${kind}\u0000${externalId}`;
  }

  get size(): number {
    return this.#byId.size;
  }

  get(id: string): ManagedObject | undefined {
    return this.#byId.get(id);
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
    if (!previous || previous.name !== object.name || previous.kind !== object.kind)
      this.#nameOrder.set(object.kind, null);
  }

  remove(id: string): void {
    const previous = this.#byId.get(id);
    if (!previous) return;
    this.#unindex(previous);
    this.#byId.delete(id);
    this.#nameOrder.set(previous.kind, null);
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
    const accept = (object: ManagedObject) =>
      remaining.every((term) => matches(object, term)) && (options.visible?.(object) ?? true);

    const keyOf = (object: ManagedObject): CursorKey => [
      sortKey === 'name' ? object.name : factOf(object, sortKey),
      object.id,
    ];
    const compare = (a: CursorKey, b: CursorKey) => {
      const byValue = compareValues(a[0], b[0]);
      const order = byValue !== 0 ? byValue : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
      return descending ? -order : order;
    };
    const isAfter = (object: ManagedObject) => !after || compare(keyOf(object), after) > 0;

    let page: ManagedObject[];
    const smallest = sets.sort((a, b) => a.size - b.size)[0];
    const ordered =
      options.kind && sortKey === 'name' && !descending ? this.#ordered(options.kind) : undefined;
    // Walking the name order costs about limit × total ÷ matches steps; sorting the candidates
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
      const candidates: ManagedObject[] = [];
      for (const id of base) {
        if (!others.every((set) => set.has(id))) continue;
        const object = this.#byId.get(id)!;
        if (accept(object) && isAfter(object)) candidates.push(object);
      }
      candidates.sort((a, b) => compare(keyOf(a), keyOf(b)));
      page = candidates.slice(0, limit + 1);
    }
    const hasMore = page.length > limit;
    const items = page.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: hasMore && last ? encodeCursor(keyOf(last)) : null };
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

  #ordered(kind: ObjectKind): string[] {
    let ordered = this.#nameOrder.get(kind);
    if (!ordered) {
      ordered = this.ofKind(kind)
        .sort((a, b) =>
          a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
        )
        .map((o) => o.id);
      this.#nameOrder.set(kind, ordered);
    }
    return ordered;
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
