import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFilterBar } from '../../web/src/inventory/filter-bar.js';

test('words become name searches, tag: a tag, short fact names the full ones', () => {
  assert.deepEqual(parseFilterBar('  web tag:env:prod power=running cpus>=4 !user.owner '), {
    filters: ['name~web', 'power.state=running', 'cpu.count>=4', '!user.owner'],
    tags: ['env:prod'],
    parents: [],
  });
});

test('a cluster or datacenter by name is left to be resolved to its id', () => {
  assert.deepEqual(parseFilterBar('cluster=sim-dc1-cl2 datacenter=sim-dc1'), {
    filters: [],
    tags: [],
    parents: [
      { kind: 'cluster', name: 'sim-dc1-cl2', fact: 'location.clusterId' },
      { kind: 'datacenter', name: 'sim-dc1', fact: 'location.datacenterId' },
    ],
  });
});

test('what is not a term is passed on for the server to judge', () => {
  assert.deepEqual(parseFilterBar('cpu.count>=x user.team').filters, ['cpu.count>=x', 'user.team']);
  assert.deepEqual(parseFilterBar('').filters, []);
});
