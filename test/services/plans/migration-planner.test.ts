import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import {
  estimateTransfer,
  migrationSetupMs,
  scheduleMoves,
  type PlannedMove,
} from '../../../src/services/plans/migration-planner.js';
import type { PolicyInput } from '../../../src/services/policy/policy-document.js';
import {
  fixtureIndex,
  fixtureModel,
  type FixtureHost,
  type FixtureVm,
} from '../../../src/testing/placement-fixtures.js';

const GiB = 1024 ** 3;
const move = (vm: string, from: string, to: string) => ({
  vmId: `vm:${vm}`,
  fromHostId: `host:${from}`,
  toHostId: `host:${to}`,
});
const byVm = (moves: PlannedMove[], name: string) => moves.find((m) => m.vmName === name)!;
/** No host memory overcommit, so that hosts fill up. */
const tight: PolicyInput = {
  name: 'tight',
  scope: { kind: 'global' },
  settings: { memoryOvercommit: 1 },
};

function model(hosts: FixtureHost[], vms: FixtureVm[], policies: PolicyInput[] = [tight]) {
  return fixtureModel(fixtureIndex(hosts, vms), policies);
}

describe('migration planner', () => {
  test('a plan that must be ordered to stay feasible: the move that frees room goes first, the other waits until it has landed', () => {
    const m = model(
      [
        { name: 'a', memoryGiB: 16 },
        { name: 'b', memoryGiB: 16 },
        { name: 'c', memoryGiB: 16 },
      ],
      [
        { name: 'v1', host: 'a', memoryGiB: 8 },
        { name: 'v2', host: 'b', memoryGiB: 8 },
        { name: 'v3', host: 'b', memoryGiB: 8 },
      ],
    );
    // Given in an order that would overfill b: v1 cannot land on b before v2 has left it.
    const schedule = scheduleMoves(m, [move('v1', 'a', 'b'), move('v2', 'b', 'c')]);
    const v1 = byVm(schedule.moves, 'v1');
    const v2 = byVm(schedule.moves, 'v2');
    assert.equal(v2.order, 0);
    assert.equal(v1.order, 1);
    assert.ok(
      v1.startMs >= v2.endMs,
      'v1 starts only once v2 has left b (both ends are held in flight)',
    );
    assert.equal(schedule.reordered, true);
    assert.equal(schedule.predictedCompletionMs, v1.endMs);
    assert.equal(m.host('host:b').memoryUsed, 16 * GiB, 'the model ends in the planned state');
    assert.equal(m.vms.get('vm:v1')!.home, m.host('host:b').index);
  });

  test('ordering never breaks anti-affinity mid-plan: a replica moves onto a host only after the other has left it', () => {
    const apart: PolicyInput = {
      name: 'apart',
      scope: { kind: 'global' },
      rules: [{ name: 'replicas', kind: 'separate', vms: "'app:db' in vm.tags", hard: true }],
    };
    const m = model(
      [{ name: 'a' }, { name: 'b' }, { name: 'c' }],
      [
        { name: 'db1', host: 'a', tags: ['app:db'] },
        { name: 'db2', host: 'b', tags: ['app:db'] },
      ],
      [apart],
    );
    const schedule = scheduleMoves(m, [move('db2', 'b', 'a'), move('db1', 'a', 'c')]);
    const db1 = byVm(schedule.moves, 'db1');
    const db2 = byVm(schedule.moves, 'db2');
    assert.ok(db2.startMs >= db1.endMs, 'db2 waits until db1 has left a');
  });

  test('moves that wait on each other are refused with ZEN_PLAN_INFEASIBLE naming them, and the model is left as it was', () => {
    const m = model(
      [
        { name: 'a', memoryGiB: 8 },
        { name: 'b', memoryGiB: 8 },
      ],
      [
        { name: 'v1', host: 'a', memoryGiB: 8 },
        { name: 'v2', host: 'b', memoryGiB: 8 },
      ],
    );
    assert.throws(
      () => scheduleMoves(m, [move('v1', 'a', 'b'), move('v2', 'b', 'a')]),
      (error: unknown) => {
        assert.ok(isZenithError(error));
        assert.equal(error.code, 'ZEN_PLAN_INFEASIBLE');
        const waiting = error.details.waiting as Array<{ vmName: string; reason: string }>;
        assert.deepEqual(waiting.map((w) => w.vmName).sort(), ['v1', 'v2']);
        for (const w of waiting) assert.match(w.reason, /memory/);
        return true;
      },
    );
    assert.equal(m.vms.get('vm:v1')!.home, m.host('host:a').index);
    assert.equal(m.host('host:a').memoryUsed, 8 * GiB);
    assert.equal(m.host('host:b').memoryUsed, 8 * GiB);
  });

  test('per-host concurrency: no more than maxPerHost migrations touch a host at once', () => {
    const limit: PolicyInput = {
      name: 'limit',
      scope: { kind: 'global' },
      settings: { migration: { maxPerHost: 2, maxTotal: 100 } },
    };
    const vms = Array.from({ length: 6 }, (_, i) => ({
      name: `v${i}`,
      host: 'a',
      power: 'suspended' as const,
    }));
    const m = model([{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'd' }], vms, [limit]);
    const schedule = scheduleMoves(
      m,
      vms.map((vm, i) => move(vm.name, 'a', ['b', 'c', 'd'][i % 3]!)),
    );
    assert.equal(schedule.moves.length, 6);
    for (const m1 of schedule.moves) {
      const overlapping = schedule.moves.filter(
        (m2) => m2.startMs < m1.endMs && m2.endMs > m1.startMs,
      );
      assert.ok(overlapping.length <= 2, `${overlapping.length} migrations leave a at once`);
    }
    assert.equal(schedule.peakConcurrency, 2);
  });

  test('bandwidth is shared: two transfers from one host at once each take about twice as long', () => {
    const net: PolicyInput = {
      name: 'net',
      scope: { kind: 'global' },
      settings: { migration: { hostBandwidthBytesPerSecond: GiB, maxPerHost: 4 } },
    };
    const hosts = [{ name: 'a' }, { name: 'b' }, { name: 'c' }];
    const alone = scheduleMoves(
      model(hosts, [{ name: 'v1', host: 'a', memoryGiB: 4, power: 'suspended' }], [net]),
      [move('v1', 'a', 'b')],
    );
    assert.equal(alone.predictedCompletionMs, migrationSetupMs + 4000);
    const pair = scheduleMoves(
      model(
        hosts,
        [
          { name: 'v1', host: 'a', memoryGiB: 4, power: 'suspended' },
          { name: 'v2', host: 'a', memoryGiB: 4, power: 'suspended' },
        ],
        [net],
      ),
      [move('v1', 'a', 'b'), move('v2', 'a', 'c')],
    );
    assert.equal(pair.peakConcurrency, 2);
    assert.equal(pair.predictedCompletionMs, migrationSetupMs + 8000);
    assert.equal(byVm(pair.moves, 'v1').rateBytesPerSecond, GiB / 2);
  });

  test('a move between datacenters is held to the inter-datacenter link, one inside a cluster only to the hosts', () => {
    const net: PolicyInput = {
      name: 'net',
      scope: { kind: 'global' },
      settings: {
        migration: {
          hostBandwidthBytesPerSecond: 10 * GiB,
          maxPerHost: 4,
          interDatacenterBandwidthBytesPerSecond: GiB,
          interClusterBandwidthBytesPerSecond: 5 * GiB,
        },
      },
    };
    const hosts = [
      { name: 'a', datacenter: 'east' },
      { name: 'b', datacenter: 'east' },
      { name: 'c', datacenter: 'west' },
      { name: 'd', datacenter: 'east', cluster: 'c2' },
    ];
    const vms = [
      { name: 'near', host: 'a', memoryGiB: 2, power: 'suspended' as const },
      { name: 'far', host: 'b', memoryGiB: 2, power: 'suspended' as const },
      { name: 'next', host: 'b', memoryGiB: 2, power: 'suspended' as const },
    ];
    const schedule = scheduleMoves(model(hosts, vms, [net]), [
      move('near', 'a', 'b'),
      move('far', 'b', 'c'),
      move('next', 'b', 'd'),
    ]);
    assert.equal(byVm(schedule.moves, 'far').rateBytesPerSecond, GiB);
    const next = byVm(schedule.moves, 'next').rateBytesPerSecond;
    assert.ok(Math.abs(next - (10 * GiB) / 3) < 1000, 'b carries three transfers: a third each');
    assert.ok(byVm(schedule.moves, 'far').endMs > byVm(schedule.moves, 'near').endMs);
  });

  test('durations come from memory and dirty rate: a running guest sends more than its memory, a stopped one nothing', () => {
    const m = model(
      [{ name: 'a' }],
      [
        { name: 'busy', host: 'a', memoryGiB: 4, dirtyBytesPerSecond: 128 * 1024 ** 2 },
        { name: 'wild', host: 'a', memoryGiB: 4, dirtyBytesPerSecond: 2 * GiB },
        { name: 'off', host: 'a', memoryGiB: 4, power: 'stopped' },
        { name: 'asleep', host: 'a', memoryGiB: 4, power: 'suspended' },
      ],
    );
    const estimate = (name: string) =>
      estimateTransfer(m.vms.get(`vm:${name}`)!, GiB, 16 * 1024 ** 2, 300);
    const busy = estimate('busy');
    // 4 GiB, then 1/8 of it again, then 1/64 …, until the rest fits in 300 ms at 1 GiB/s.
    assert.ok(busy.bytes > 4 * GiB * 1.14 && busy.bytes < 4 * GiB * (8 / 7), `${busy.bytes}`);
    assert.ok(busy.converges);
    assert.equal(estimate('wild').converges, false, 'dirtier than the link: throttled');
    assert.equal(estimate('off').bytes, 0);
    assert.equal(estimate('asleep').bytes, 4 * GiB);
  });
});
