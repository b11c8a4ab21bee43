/**
 * Where a role binding on a scope reaches: an object is in the scope of
 * itself, of every ancestor (datacenter → cluster → host → vm), and of every
 * resource group that holds it or an ancestor — as a child, as a listed member
 * (`user.members`, object ids), or through the group's selector (`user.selector`,
 * a list filter such as `tags=prod`). An object may be in several resource groups.
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

export function selectorOf(group: ManagedObject): FilterTerm[] {
  const raw = group.userFacts[selectorFact];
  if (typeof raw !== 'string' || raw.trim() === '') return [];
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

/** How far a binding's scope reaches, split so that the common case (ancestors) never evaluates selectors. */
export interface ScopeResolver {
  /** The object and its ancestors, nearest first. */
  ancestors(objectId: string): string[];
  /** Resource groups whose selector or member list picks one of `ancestors`, and their own ancestors. */
  groupsHolding(ancestors: string[]): string[];
  /** Could a binding on this scope reach objects through a selector or member list (it is, or holds, such a group)? */
  reachesBySelector(scopeId: string): boolean;
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
  const selecting = () =>
    index.ofKind('resourceGroup').flatMap((group) => {
      let terms: FilterTerm[] = [];
      try {
        terms = selectorOf(group);
      } catch {
        // a selector that no longer parses selects nothing; listed members still count
      }
      const members = new Set(membersOf(group));
      return terms.length > 0 || members.size > 0 ? [{ group, terms, members }] : [];
    });
  return {
    ancestors: lineage,
    groupsHolding(ancestors) {
      const path = ancestors.flatMap((id) => index.get(id) ?? []);
      const found: string[] = [];
      for (const { group, terms, members } of selecting())
        if (
          path.some(
            (object) =>
              members.has(object.id) ||
              (terms.length > 0 && terms.every((term) => matches(object, term))),
          )
        )
          for (const id of lineage(group.id)) if (!found.includes(id)) found.push(id);
      return found;
    },
    reachesBySelector(scopeId) {
      return selecting().some(({ group }) => lineage(group.id).includes(scopeId));
    },
  };
}
