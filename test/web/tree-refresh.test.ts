import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TreeNodeData } from '@mantine/core';
import {
  loadedParents,
  parentsToRefresh,
  replaceChildren,
  TREE_ROOT,
} from '../../web/src/inventory/tree-refresh.js';
import type { ZenithEvent } from '../../src/api/events.js';

// Events as the stream delivers them; the cases below give each type the data it has.
const event = (type: string, objectId: string | null, data: Record<string, unknown> | null) =>
  ({
    seq: 1,
    type,
    objectId,
    data,
    ts: 0,
  }) as ZenithEvent;
const shownUnder = new Map([
  ['vm-1', 'host-a'],
  ['host-a', 'cluster-1'],
  ['dc-1', TREE_ROOT],
]);
const parentOf = (id: string) => shownUnder.get(id);

test('an event names the opened levels it changes', () => {
  const refresh = (type: string, objectId: string | null, data: Record<string, unknown> | null) => {
    const answer = parentsToRefresh(event(type, objectId, data), parentOf);
    return answer === 'all' ? answer : [...answer].sort();
  };
  assert.deepEqual(refresh('inventory.created', 'vm-2', { kind: 'vm', parentId: 'host-b' }), [
    'host-b',
  ]);
  assert.deepEqual(
    refresh('inventory.created', 'dc-2', { kind: 'datacenter', parentId: null }),
    [TREE_ROOT],
    'a new datacenter: the top level',
  );
  assert.deepEqual(refresh('inventory.deleted', 'vm-1', { kind: 'vm', parentId: 'host-a' }), [
    'host-a',
  ]);
  assert.deepEqual(
    refresh('inventory.updated', 'vm-1', {
      kind: 'vm',
      parentId: 'host-b',
      changed: ['parent', 'power.state'],
      location: { hostId: 'host-b', previousHostId: 'host-a', powerState: 'running' },
    }),
    ['host-a', 'host-b'],
    'a move: where it was shown and where it is',
  );
  assert.deepEqual(
    refresh('inventory.updated', 'vm-1', { kind: 'vm', parentId: 'host-a', changed: ['name'] }),
    ['host-a'],
    'a rename: its level, for the label and the order',
  );
  assert.deepEqual(
    refresh('inventory.updated', 'vm-1', {
      kind: 'vm',
      parentId: 'host-a',
      changed: ['power.state', 'cpu.count'],
      location: { hostId: 'host-a', previousHostId: 'host-a', powerState: 'stopped' },
    }),
    [],
    'facts the tree does not show change nothing',
  );
  assert.deepEqual(
    refresh('inventory.updated', 'host-a', {
      kind: 'host',
      parentId: 'cluster-1',
      changed: ['hardware.power'],
    }),
    ['cluster-1'],
    "a machine's power, shown beside its host: the host's level",
  );
  assert.equal(refresh('inventory.synced', null, { created: 2000 }), 'all');
  assert.deepEqual(refresh('task.succeeded', 't1', {}), []);
});

test('fresh children replace old ones and keep what was open below them', () => {
  const data: TreeNodeData[] = [
    {
      value: 'dc-1',
      label: 'dc1',
      children: [
        {
          value: 'cluster-1',
          label: 'cl1',
          children: [
            { value: 'host-a', label: 'a', children: [{ value: 'vm-1', label: 'vm1' }] },
            { value: 'host-b', label: 'b', hasChildren: true },
          ],
        },
      ],
    },
  ];
  assert.deepEqual(loadedParents(data), ['dc-1', 'cluster-1', 'host-a']);
  const after = replaceChildren(data, 'cluster-1', [
    { value: 'host-a', label: 'a (renamed)', hasChildren: true },
    { value: 'host-c', label: 'c', hasChildren: true },
  ]);
  const cluster = after[0]!.children![0]!;
  assert.deepEqual(
    cluster.children!.map((h) => [h.value, h.label, h.children?.map((v) => v.value)]),
    [
      ['host-a', 'a (renamed)', ['vm-1']],
      ['host-c', 'c', undefined],
    ],
  );
  assert.deepEqual(
    replaceChildren(data, TREE_ROOT, [{ value: 'dc-1', label: 'dc1', hasChildren: true }])[0]!
      .children,
    data[0]!.children,
    'the top level keeps its opened datacenters',
  );
  assert.equal(data[0]!.children![0]!.children!.length, 2, 'the input is not changed');
});
