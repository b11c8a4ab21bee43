/**
 * Keeping the inventory tree live: which opened levels an inventory event changes, and how fresh
 * children replace old ones without closing what is open below them. Pure, so it is tested alone.
 */
import type { TreeNodeData } from '@mantine/core';
import type { ZenithEvent } from '../api/types.ts';

/** The tree's top level (the datacenters), as a parent id. */
export const TREE_ROOT = '';

/**
 * The parents whose children an event may have changed (TREE_ROOT for the top level), or 'all'
 * after a bulk synchronisation, whose events are summed up in one. `parentOf` answers the parent
 * the tree last showed an object under.
 */
export function parentsToRefresh(
  event: ZenithEvent,
  parentOf: (id: string) => string | undefined,
): Set<string> | 'all' {
  const parents = new Set<string>();
  if (event.type === 'inventory.synced') return 'all';
  const add = (id: unknown) => {
    if (typeof id === 'string') parents.add(id);
    else if (id === null) parents.add(TREE_ROOT);
  };
  const shownUnder = event.objectId ? parentOf(event.objectId) : undefined;
  switch (event.type) {
    case 'inventory.created':
      add(event.data.parentId);
      break;
    case 'inventory.deleted':
    case 'inventory.missing':
      add(shownUnder);
      add(event.data.parentId);
      break;
    case 'inventory.updated': {
      const changed = event.data.changed ?? [];
      // A machine's power (read by its BMC's poll) is shown beside its host's name.
      if (
        changed.includes('name') ||
        changed.includes('parent') ||
        changed.includes('status') ||
        changed.includes('hardware.power')
      ) {
        add(shownUnder);
        add(event.data.parentId);
      }
      const location = event.data.location;
      if (location && location.hostId !== location.previousHostId) {
        if (typeof location.previousHostId === 'string') parents.add(location.previousHostId);
        if (typeof location.hostId === 'string') parents.add(location.hostId);
      }
      break;
    }
  }
  return parents;
}

/**
 * The tree with `fresh` as the children of `parent` (TREE_ROOT: the top level). A node that stays
 * keeps the children it had loaded, so what is open below it stays open.
 */
export function replaceChildren(
  data: TreeNodeData[],
  parent: string,
  fresh: TreeNodeData[],
): TreeNodeData[] {
  const keep = (old: TreeNodeData[] | undefined) => {
    const before = new Map((old ?? []).map((node) => [node.value, node]));
    return fresh.map((node) => {
      const loaded = before.get(node.value)?.children;
      return loaded ? { ...node, children: loaded } : node;
    });
  };
  if (parent === TREE_ROOT) return keep(data);
  const walk = (nodes: TreeNodeData[]): TreeNodeData[] =>
    nodes.map((node) => {
      if (node.value === parent) return { ...node, children: keep(node.children) };
      return node.children ? { ...node, children: walk(node.children) } : node;
    });
  return walk(data);
}

/** Every node whose children were loaded (each has a `children` array), in tree order. */
export function loadedParents(data: TreeNodeData[]): string[] {
  const out: string[] = [];
  const walk = (nodes: TreeNodeData[]) => {
    for (const node of nodes) {
      if (!node.children) continue;
      out.push(node.value);
      walk(node.children);
    }
  };
  walk(data);
  return out;
}
