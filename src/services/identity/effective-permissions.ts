/**
 * What an identity may do, in one answer: the permissions it holds everywhere, the scopes its
 * bindings reach with what they grant there, and, for the objects asked about, the permissions
 * that hold on each. The web console asks once per page of objects instead of once per row and
 * permission, so the buttons it offers follow custom roles and scoped bindings.
 */
import type { AccessGraph, Asker } from './access-graph.js';
import { permissions as allPermissions, type Permission } from './roles.js';

export interface EffectivePermissions {
  /** Held on everything. */
  global: Permission[];
  /** Held on these scopes (an object and its subtree, or a resource group), beyond the global ones. */
  scoped: Array<{ scopeId: string; permissions: Permission[] }>;
  /** For each object asked about that exists and the identity may read: every permission that holds on it. */
  objects: Record<string, Permission[]>;
  /** Objects asked about that do not exist or that the identity may not read (the two look alike). */
  missing: string[];
}

export function effectivePermissions(
  graph: AccessGraph,
  asker: Asker,
  objectIds: string[],
  exists: (objectId: string) => boolean,
): EffectivePermissions {
  const global: Permission[] = [];
  const scoped = new Map<string, Permission[]>();
  const held: Permission[] = [];
  for (const permission of allPermissions) {
    const grant = graph.grantOf(asker, permission);
    if (grant.global) global.push(permission);
    else
      for (const scopeId of grant.scopes.keys()) {
        let list = scoped.get(scopeId);
        if (!list) scoped.set(scopeId, (list = []));
        list.push(permission);
      }
    if (grant.global || grant.scopes.size > 0) held.push(permission);
  }
  // One filter per permission held, then a set lookup or a scope walk per object: a page of
  // objects costs (permissions × objects), never a decision with its explanation per pair.
  const tests = new Map(held.map((p) => [p, graph.filter(asker, p)] as const));
  const readable = tests.get('inventory.read') ?? (() => false);
  const objects: Record<string, Permission[]> = {};
  const missing: string[] = [];
  for (const id of new Set(objectIds)) {
    if (!exists(id) || !readable(id)) {
      missing.push(id);
      continue;
    }
    objects[id] = held.filter((p) => tests.get(p)!(id));
  }
  return {
    global,
    scoped: [...scoped].map(([scopeId, list]) => ({ scopeId, permissions: list })),
    objects,
    missing,
  };
}
