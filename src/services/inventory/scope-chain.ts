/**
 * Where a role binding on a scope reaches. An object is in the scope of
 * itself and of every ancestor (datacenter → cluster → host → vm). A resource
 * group also **picks** objects: the ones it lists (`user.members`, object
 * ids) and the ones its selector matches (`user.selector`, list filter terms
 * such as `tags=env:prod`); a picked object and everything under it are in
 * the scope of that group — and of that group only, not of the group's
 * ancestors, so a group made under a cluster never widens what bindings on
 * the cluster reach.
 *
 * A selector picks only inside the subtree of the group's parent (anywhere for
 * a group at the top): whoever may set it must manage that whole subtree, so
 * it can never pick, now or later, an object its author could not manage.
 */
import { matches, parseFilter, type FilterTerm } from './filter.js';
import type { InventoryIndex } from './inventory-index.js';
import type { ManagedObject } from './model.js';

export const selectorFact = 'user.selector';
export const membersFact = 'user.members';

/** The object ids a resource group lists as its members (besides its children). */
export function membersOf(group: ManagedObject): string[] {
  const raw = group.userFacts[membersFact];
  return Array.isArray(raw) ? raw.filter((id): id is string => typeof id === 'string') : [];
}

/** Parsed selectors by their text: a decision must not parse filters. */
const parsedSelectors = new Map<string, FilterTerm[]>();

/** The terms of a selector's text (ZEN_BAD_FILTER for one that does not parse). */
export function parseSelector(raw: string): FilterTerm[] {
  let terms = parsedSelectors.get(raw);
  if (!terms) {
    terms = raw
      .split(/\s+/)
      .filter(Boolean)
      .map((term) => parseFilter(term));
    if (parsedSelectors.size > 10_000) parsedSelectors.clear();
    parsedSelectors.set(raw, terms);
  }
  return terms;
}

export function selectorOf(group: ManagedObject): FilterTerm[] {
  const raw = group.userFacts[selectorFact];
  if (typeof raw !== 'string' || raw.trim() === '') return [];
  return parseSelector(raw);
}

/** What one resource group picks besides its children. */
export interface Picking {
  groupId: string;
  /** The selector picks only objects at or under this one; null: anywhere. */
  boundId: string | null;
  terms: FilterTerm[];
  members: ReadonlySet<string>;
}

/** How far a binding's scope reaches, split so that the common case (ancestors) never evaluates selectors. */
export interface ScopeResolver {
  /** The object and its ancestors, nearest first. */
  ancestors(objectId: string): string[];
  /** Does this resource group pick (by member list or selector) one of `ancestors` (an object's lineage)? */
  picks(scopeId: string, ancestors: string[]): boolean;
  /** Is the scope a resource group that picks objects besides its children? */
  picksObjects(scopeId: string): boolean;
  /** Every resource group that picks one of `ancestors` (for reports; a decision asks `picks`). */
  groupsHolding(ancestors: string[]): string[];
  /** Changes whenever what resource groups pick may have changed (a group made, edited or deleted). */
  version(): number;
}

export function scopeResolverOf(index: InventoryIndex): ScopeResolver {
  const lineage = (objectId: string) => {
    const chain: string[] = [];
    const seen = new Set<string>();
    let current = index.get(objectId);
    if (!current) return [objectId];
    while (current && !seen.has(current.id)) {
      seen.add(current.id);
      chain.push(current.id);
      current = current.parentId ? index.get(current.parentId) : undefined;
    }
    return chain;
  };
  // The picking groups, rebuilt only when a resource group changes (not per object decided).
  let cachedAt = -1;
  let picking = new Map<string, Picking>();
  const pickingGroups = () => {
    const version = index.kindVersion('resourceGroup');
    if (version === cachedAt) return picking;
    const next = new Map<string, Picking>();
    for (const group of index.ofKind('resourceGroup')) {
      let terms: FilterTerm[] = [];
      try {
        terms = selectorOf(group);
      } catch {
        // a selector that no longer parses selects nothing; listed members still count
      }
      const members = new Set(membersOf(group));
      if (terms.length > 0 || members.size > 0)
        next.set(group.id, { groupId: group.id, boundId: group.parentId, terms, members });
    }
    picking = next;
    cachedAt = version;
    return picking;
  };
  // `ancestors` is a lineage, nearest first: the ancestor at i lies in the bound if the bound is at i or after.
  const pickedBy = (group: Picking, ancestors: string[]) => {
    const bound = group.boundId === null ? Infinity : ancestors.indexOf(group.boundId);
    return ancestors.some((id, i) => {
      if (group.members.has(id)) return true;
      if (group.terms.length === 0 || bound < i) return false;
      const object = index.get(id);
      return object !== undefined && group.terms.every((term) => matches(object, term));
    });
  };
  return {
    ancestors: lineage,
    picks(scopeId, ancestors) {
      const group = pickingGroups().get(scopeId);
      return group !== undefined && pickedBy(group, ancestors);
    },
    picksObjects(scopeId) {
      return pickingGroups().has(scopeId);
    },
    version: () => index.kindVersion('resourceGroup'),
    groupsHolding(ancestors) {
      const found: string[] = [];
      for (const group of pickingGroups().values())
        if (pickedBy(group, ancestors)) found.push(group.groupId);
      return found;
    },
  };
}
