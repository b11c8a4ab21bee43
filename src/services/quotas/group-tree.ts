/**
 * The nesting of groups as quotas see it: a group's quota covers the VMs of
 * the group and of every group nested in it, however deep; a group may sit
 * in several parents, so "the path to the root" is every group above it.
 */
export class GroupTree {
  /** group id → the groups it is directly in. */
  readonly #parents = new Map<string, Set<string>>();
  /** group id → the groups directly in it. */
  readonly #children = new Map<string, Set<string>>();

  constructor(
    readonly names: ReadonlyMap<string, string>,
    nesting: Iterable<{ parentId: string; childId: string }>,
  ) {
    for (const { parentId, childId } of nesting) {
      link(this.#parents, childId, parentId);
      link(this.#children, parentId, childId);
    }
  }

  /** The group and every group it is nested in. */
  above(groupId: string): Set<string> {
    return walk(groupId, this.#parents);
  }

  /** The group and every group nested in it. */
  below(groupId: string): Set<string> {
    return walk(groupId, this.#children);
  }
}

function link(map: Map<string, Set<string>>, from: string, to: string): void {
  let set = map.get(from);
  if (!set) map.set(from, (set = new Set()));
  set.add(to);
}

function walk(start: string, edges: ReadonlyMap<string, ReadonlySet<string>>): Set<string> {
  const seen = new Set([start]);
  const queue = [start];
  while (queue.length > 0)
    for (const next of edges.get(queue.pop()!) ?? [])
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
  return seen;
}
