/**
 * Sorting a large inventory by a fact, in the in-memory index alone (no HTTP, no access checks):
 * the time of one page of 50 VMs sorted by `memory.bytes`, ascending and descending, and of the
 * next page after a cursor, among 50,000 VMs. The first query of a sort builds the order the index
 * keeps (shown apart); a change to one VM's sort value drops it (the "churn" line: a change before
 * every query).
 *
 *   node --import tsx bench/inventory-sort.ts [--vms 50000] [--rounds 20]
 */
import { parseArgs } from 'node:util';
import { InventoryIndex } from '../src/services/inventory/inventory-index.js';
import type { ManagedObject } from '../src/services/inventory/model.js';

const { values } = parseArgs({
  options: { vms: { type: 'string', default: '50000' }, rounds: { type: 'string', default: '20' } },
});
const count = Number(values.vms);
const rounds = Number(values.rounds);

const index = new InventoryIndex();
for (let i = 0; i < count; i++) {
  const object: ManagedObject = {
    id: `vm-${String(i).padStart(6, '0')}`,
    kind: 'vm',
    name: `vm-${(i * 7919) % count}`,
    parentId: `host-${i % 1000}`,
    connectionId: 'c1',
    externalId: `e${i}`,
    tags: i % 3 === 0 ? ['env:prod'] : ['env:dev'],
    facts: {
      'memory.bytes': (1 + ((i * 31) % 64)) * 268435456,
      'cpu.count': 1 + (i % 16),
      'power.state': i % 4 === 0 ? 'stopped' : 'running',
    },
    userFacts: {},
    computed: {},
    status: 'present',
    missingSince: null,
    createdAt: 0,
    updatedAt: 0,
  };
  index.put(object);
}

function time(label: string, run: () => unknown, before: () => void = () => undefined): void {
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    before();
    const started = process.hrtime.bigint();
    run();
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  const first = samples[0]!;
  const later = samples.slice(1).sort((a, b) => a - b);
  const p50 = later[Math.floor(later.length / 2)]!;
  const max = later.at(-1)!;
  console.log(
    `${label.padEnd(58)} first ${first.toFixed(1).padStart(6)} ms, then p50 ${p50.toFixed(2)} ms, max ${max.toFixed(1)} ms`,
  );
}

console.log(`${count} VMs, ${rounds} rounds each`);
time('page of 50 by name', () => index.query({ kind: 'vm', limit: 50 }));
time('page of 50 by memory.bytes', () =>
  index.query({ kind: 'vm', limit: 50, sort: 'memory.bytes' }),
);
time('page of 50 by -memory.bytes', () =>
  index.query({ kind: 'vm', limit: 50, sort: '-memory.bytes' }),
);
const first = index.query({ kind: 'vm', limit: 50, sort: 'memory.bytes' });
time('next page by memory.bytes (after a cursor)', () =>
  index.query({ kind: 'vm', limit: 50, sort: 'memory.bytes', cursor: first.nextCursor! }),
);
time('page of 50 by memory.bytes among tag env:prod', () =>
  index.query({ kind: 'vm', limit: 50, sort: 'memory.bytes', tags: ['env:prod'] }),
);
time('page of 500 by power.state (strings)', () =>
  index.query({ kind: 'vm', limit: 500, sort: 'power.state' }),
);
let churn = 0;
time(
  'churn: one VM changes its memory before each query',
  () => index.query({ kind: 'vm', limit: 50, sort: 'memory.bytes' }),
  () => {
    const vm = index.get(`vm-${String(churn++ % count).padStart(6, '0')}`)!;
    index.put({ ...vm, facts: { ...vm.facts, 'memory.bytes': 268435456 * (1 + (churn % 64)) } });
  },
);
time(
  'one VM changes its power state (another key) before each query',
  () => index.query({ kind: 'vm', limit: 50, sort: 'memory.bytes' }),
  () => {
    const vm = index.get(`vm-${String(churn++ % count).padStart(6, '0')}`)!;
    const power = vm.facts['power.state'] === 'running' ? 'stopped' : 'running';
    index.put({ ...vm, facts: { ...vm.facts, 'power.state': power } });
  },
);
