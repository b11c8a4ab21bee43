/**
 * The inventory tree: datacenter → cluster → host → VM, each level fetched when it is first
 * opened (`/objects/ID/children`), so a fleet of 50,000 VMs costs one small list per click.
 * Mantine's Tree gives the keyboard: arrows move and open/close, Space opens, Enter activates.
 */
import {
  Alert,
  Group,
  mergeAsyncChildren,
  Text,
  Tree,
  useTree,
  type TreeNodeData,
} from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import type { ManagedObject, Page } from '../api/types.ts';

/** What the tree shows under each kind (networks and datastores are not part of the path to a VM). */
const shownKinds = new Set(['datacenter', 'cluster', 'host', 'vm']);

function nodeOf(object: ManagedObject): TreeNodeData {
  return {
    value: object.id,
    label: object.name,
    hasChildren: object.kind !== 'vm',
  };
}

export function InventoryTree(props: {
  client: ApiClient;
  onActivate: (object: { id: string; kind: string; name: string }) => void;
}) {
  const { client, onActivate } = props;
  const [data, setData] = useState<TreeNodeData[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [kinds] = useState(() => new Map<string, { kind: string; name: string }>());

  const remember = useCallback(
    (objects: ManagedObject[]) => {
      for (const object of objects) kinds.set(object.id, { kind: object.kind, name: object.name });
    },
    [kinds],
  );

  const loadChildren = useCallback(
    async (id: string) => {
      try {
        const answer = await client.call<{ items: ManagedObject[] }>(
          'GET',
          `/objects/${encodeURIComponent(id)}/children`,
        );
        const children = answer.items
          .filter((child) => shownKinds.has(child.kind))
          .sort((a, b) => a.name.localeCompare(b.name));
        remember(children);
        setData((now) => mergeAsyncChildren(now, id, children.map(nodeOf)));
      } catch (failure) {
        setError(failure instanceof ApiError ? failure.reason : String(failure));
        throw failure;
      }
    },
    [client, remember],
  );
  const tree = useTree({ onLoadChildren: loadChildren });

  useEffect(() => {
    const abort = new AbortController();
    client
      .call<Page<ManagedObject>>('GET', '/datacenters?limit=1000', undefined, abort.signal)
      .then((page) => {
        remember(page.items);
        setData(page.items.map(nodeOf));
      })
      .catch((failure: unknown) => {
        if (!abort.signal.aborted)
          setError(failure instanceof ApiError ? failure.reason : String(failure));
      });
    return () => abort.abort();
  }, [client, remember]);

  return (
    <nav aria-label="Inventory tree">
      {error && (
        <Alert color="red" role="alert" title="The tree could not be loaded" mb="xs">
          {error}
        </Alert>
      )}
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
