/**
 * Where a role binding on a scope reaches: an object is in the scope of
 * itself, of every ancestor (datacenter → cluster → host → vm), and of every
 * resource group that holds it or an ancestor — as a child, or through the
 * group's selector (`user.selector`, a list filter such as `tags=prod`).
 */
import { matches, parseFilter, type FilterTerm } from './filter.js';
import type { InventoryIndex } from './inventory-index.js';
import type { ManagedObject } from './model.js';

export const selectorFact = 'user.selector';

export function selectorOf(group: ManagedObject): FilterTerm[] {
  const raw = group.userFacts[selectorFact];
  if (typeof raw !== 'string' || raw.trim() === '') return [];
  return raw
    .split(/\s+/)
    .filter(Boolean)
    .map((term) => parseFilter(term));
}

export function scopeChainOf(index: InventoryIndex): (objectId: string) => string[] {
  return (objectId) => {
    const chain: string[] = [];
    let current = index.get(objectId);
    if (!current) return [objectId];
    const seen = new Set<string>();
    while (current && !seen.has(current.id)) {
      seen.add(current.id);
      chain.push(current.id);
      current = current.parentId ? index.get(current.parentId) : undefined;
    }
    const path = chain.map((id) => index.get(id)!);
    for (const group of index.ofKind('resourceGroup')) {
      if (seen.has(group.id)) continue;
      let terms: FilterTerm[];
      try {
        terms = selectorOf(group);
      } catch {
        continue; // a selector that no longer parses selects nothing
      }
      if (terms.length === 0) continue;
      if (path.some((object) => terms.every((term) => matches(object, term)))) {
        // The group and its own ancestors reach the object too.
        let holder: ManagedObject | undefined = group;
        while (holder && !seen.has(holder.id)) {
          seen.add(holder.id);
          chain.push(holder.id);
          holder = holder.parentId ? index.get(holder.parentId) : undefined;
        }
      }
    }
    return chain;
  };
}
