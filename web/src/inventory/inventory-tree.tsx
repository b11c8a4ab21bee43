/**
 * The inventory tree: datacenter → cluster → host → VM, each level fetched when it is first
 * opened (`/objects/ID/children`), so a fleet of 50,000 VMs costs one small list per click.
 * Mantine's Tree gives the keyboard: arrows move and open/close, Space opens, Enter activates.
 * Live: an inventory event that adds, removes, renames or moves something under an opened level
 * fetches that level again (tree-refresh.ts), at most every 300 ms, keeping what is open below it.
 */
import { Group, Text, Tree, useTree, type TreeNodeData } from '@mantine/core';
import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import type { ManagedObject, Page } from '../api/types.ts';
import { loadedParents, parentsToRefresh, replaceChildren, TREE_ROOT } from './tree-refresh.ts';
import { SimulatedBadge } from '../components/simulated-badge.tsx';
import { HostBadges, machinePowerOf } from '../hosts/host-badges.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';

/** What the tree shows under each kind (networks and datastores are not part of the path to a VM). */
const shownKinds = new Set(['datacenter', 'cluster', 'host', 'vm']);

/** Hosts show whether they are bare metal and the power of the machine under them. */
function hasBadges(object: ManagedObject): boolean {
  if (object.simulated) return true;
  if (object.kind !== 'host') return false;
  return object.computed['host.mode'] === 'bare-metal' || machinePowerOf(object) !== undefined;
}

function nodeOf(object: ManagedObject): TreeNodeData {
  return {
    value: object.id,
    label: hasBadges(object) ? (
      <Group gap={6} wrap="nowrap" component="span">
        <span>{object.name}</span>
        <SimulatedBadge simulated={object.simulated} />
        {object.kind === 'host' && <HostBadges host={object} />}
      </Group>
    ) : (
      object.name
    ),
    hasChildren: object.kind !== 'vm',
  };
}

export function InventoryTree(props: {
  client: ApiClient;
  events: EventStream;
  onActivate: (object: { id: string; kind: string; name: string }) => void;
}) {
  const { client, events, onActivate } = props;
  const [data, setData] = useState<TreeNodeData[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [kinds] = useState(() => new Map<string, { kind: string; name: string }>());
  /** The parent each shown object was listed under (TREE_ROOT for datacenters). */
  const [parents] = useState(() => new Map<string, string>());
  const shown = useRef<TreeNodeData[]>([]);
  shown.current = data;

  const show = useCallback(
    (parent: string, objects: ManagedObject[]) => {
      for (const object of objects) {
        kinds.set(object.id, { kind: object.kind, name: object.name });
        parents.set(object.id, parent);
      }
      setData((now) => replaceChildren(now, parent, objects.map(nodeOf)));
    },
    [kinds, parents],
  );

  const fetchChildren = useCallback(
    async (id: string) => {
      const answer = await client.call<{ items: ManagedObject[] }>(
        'GET',
        `/objects/${encodeURIComponent(id)}/children`,
      );
      show(
        id,
        answer.items
          // What the hypervisor no longer reports (deleted, or gone elsewhere) is not shown, as in the table.
          .filter((child) => shownKinds.has(child.kind) && child.status === 'present')
          .sort((a, b) => a.name.localeCompare(b.name)),
      );
    },
    [client, show],
  );
  const loadChildren = useCallback(
    async (id: string) => {
      try {
        await fetchChildren(id);
      } catch (failure) {
        setError(failure instanceof ApiError ? failure.reason : String(failure));
        throw failure;
      }
    },
    [fetchChildren],
  );
  const tree = useTree({ onLoadChildren: loadChildren });

  const loadRoot = useCallback(
    async (signal?: AbortSignal) => {
      const page = await client.call<Page<ManagedObject>>(
        'GET',
        '/datacenters?limit=1000',
        undefined,
        signal,
      );
      show(
        TREE_ROOT,
        page.items.filter((datacenter) => datacenter.status === 'present'),
      );
    },
    [client, show],
  );

  useEffect(() => {
    const abort = new AbortController();
    loadRoot(abort.signal).catch((failure: unknown) => {
      if (!abort.signal.aborted)
        setError(failure instanceof ApiError ? failure.reason : String(failure));
    });
    return () => abort.abort();
  }, [loadRoot]);

  // Live: the opened levels an event touches are fetched again together.
  useEffect(() => {
    let pending = new Set<string>();
    let timer: ReturnType<typeof setTimeout> | null = null;
    const flush = () => {
      timer = null;
      const loaded = new Set(loadedParents(shown.current));
      const wanted = pending;
      pending = new Set();
      for (const parent of wanted) {
        // A level gone in the meantime answers 404; the next refresh of its parent drops it.
        if (parent === TREE_ROOT) void loadRoot().catch(() => undefined);
        else if (loaded.has(parent)) void fetchChildren(parent).catch(() => undefined);
      }
    };
    const unsubscribe = events.subscribe((event) => {
      const touched = parentsToRefresh(event, (id) => parents.get(id));
      const add = touched === 'all' ? [TREE_ROOT, ...loadedParents(shown.current)] : touched;
      for (const parent of add) pending.add(parent);
      if (pending.size > 0) timer ??= setTimeout(flush, 300);
    });
    return () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
    };
  }, [events, fetchChildren, loadRoot, parents]);

  return (
    <nav aria-label="Inventory tree">
      <ErrorAlert title="The tree could not be loaded" mb="xs" error={error} />
      {data.length === 0 && !error && <Text c="dimmed">No datacenters.</Text>}
      <Tree
        data={data}
        tree={tree}
        levelOffset="md"
        expandOnClick={false}
        aria-label="Datacenters, clusters, hosts and VMs"
        onKeyDown={(event) => {
          if (event.key !== 'Enter') return;
          const item = (event.target as HTMLElement).closest<HTMLElement>('[role=treeitem]');
          const id = item?.dataset.value;
          const object = id ? kinds.get(id) : undefined;
          if (id && object) onActivate({ id, ...object });
        }}
        renderNode={({ node, expanded, hasChildren, elementProps, isLoading }) => {
          const object = kinds.get(node.value);
          return (
            <Group
              gap={6}
              wrap="nowrap"
              {...elementProps}
              onClick={(event) => {
                elementProps.onClick(event);
                if (object) onActivate({ id: node.value, ...object });
              }}
            >
              {hasChildren ? (
                <Text
                  component="span"
                  size="xs"
                  aria-hidden
                  w={14}
                  onClick={(event) => {
                    event.stopPropagation();
                    tree.toggleExpanded(node.value);
                  }}
                >
                  {isLoading ? '…' : expanded ? '▾' : '▸'}
                </Text>
              ) : (
                <Text component="span" w={14} aria-hidden />
              )}
              <Text component="span" size="sm" c="dimmed" aria-hidden>
                {object?.kind === 'datacenter'
                  ? 'DC'
                  : object?.kind === 'cluster'
                    ? 'CL'
                    : object?.kind === 'host'
                      ? 'H'
                      : 'VM'}
              </Text>
              <Text component="span" size="sm">
                {node.label}
              </Text>
            </Group>
          );
        }}
      />
    </nav>
  );
}
