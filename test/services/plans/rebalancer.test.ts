import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VmPlacer } from '../../../src/services/placement/placement-engine.js';
import { loadOf, type PlacementModel } from '../../../src/services/placement/placement-model.js';
import type { PolicyInput } from '../../../src/services/policy/policy-document.js';
import { imbalanceOf, planRebalance } from '../../../src/services/plans/rebalancer.js';
import { scheduleMoves } from '../../../src/services/plans/migration-planner.js';
import { fixtureModel, simulatedFleetIndex } from '../../../src/testing/placement-fixtures.js';

/** A fleet with uneven hosts: 4 clusters × 10 hosts, 12 VMs each, memory not overcommitted. */
const fleet = {
  seed: 3,
  datacenters: 1,
  clustersPerDatacenter: 4,
  hostsPerCluster: 10,
  vmsPerHost: 12,
};
const tight: PolicyInput = {
  name: 'tight',
  scope: { kind: 'global' },
  settings: { cpuOvercommit: 2 },
};

function snapshot(model: PlacementModel) {
  return [...model.vms.values()].map((vm) => `${vm.id}@${vm.home}`).join(',');
}

/** Applies moves one at a time, checking each is allowed where it lands. */
function applyChecked(model: PlacementModel, moves: Array<{ vmId: string; toHostId: string }>) {
  for (const move of moves) {
    const vm = model.vms.get(move.vmId)!;
    const target = model.host(move.toHostId);
    assert.ok(new VmPlacer(model, vm).fits(target), `${vm.name} may go to ${target.name}`);
    model.move(vm, target);
  }
}

describe('rebalancer', () => {
  test('balance lowers the imbalance within the cap on moves, every move bringing the minimum benefit, and leaves the model as it was', () => {
    const model = fixtureModel(simulatedFleetIndex(fleet), [tight]);
    const before = snapshot(model);
    const plan = planRebalance(model, { mode: 'balance', maxMoves: 15, minBenefit: 0.02 });
    assert.equal(snapshot(model), before, 'planning changes nothing');
    assert.ok(plan.moves.length > 0 && plan.moves.length <= 15);
    for (const move of plan.moves)
      assert.ok(move.benefit >= 0.02, `${move.vmName}: ${move.benefit}`);
    assert.ok(plan.after.stddevLoad < plan.before.stddevLoad);
    assert.ok(plan.after.maxLoad <= plan.before.maxLoad);
    assert.equal(new Set(plan.moves.map((m) => m.vmId)).size, plan.moves.length, 'a VM moves once');
    applyChecked(model, plan.moves);
    assert.ok(Math.abs(imbalanceOf(model.hosts).stddevLoad - plan.after.stddevLoad) < 1e-9);
    for (const host of model.hosts) {
      assert.ok(host.cpuUsed <= host.cpuCapacity && host.memoryUsed <= host.memoryCapacity);
    }
  });

  test('a higher minimum benefit gives fewer moves; one nothing reaches gives none', () => {
    const model = fixtureModel(simulatedFleetIndex(fleet), [tight]);
    const small = planRebalance(model, { mode: 'balance', maxMoves: 200, minBenefit: 0.01 });
    const big = planRebalance(model, { mode: 'balance', maxMoves: 200, minBenefit: 0.1 });
    assert.ok(big.moves.length < small.moves.length);
    const none = planRebalance(model, { mode: 'balance', maxMoves: 200, minBenefit: 2 });
    assert.equal(none.moves.length, 0);
  });

  test('no move breaks a hard anti-affinity rule, though balancing would like it', () => {
    const apart: PolicyInput = {
      name: 'apart',
      scope: { kind: 'global' },
      rules: [
        {
          name: 'db',
          kind: 'separate',
          vms: "'tier:db' in vm.tags",
          groupBy: "tagValue(vm.tags, 'env')",
          hard: true,
        },
      ],
    };
    const model = fixtureModel(simulatedFleetIndex({ ...fleet, vmsPerHost: 4 }), [tight, apart]);
    const plan = planRebalance(model, { mode: 'balance', maxMoves: 100, minBenefit: 0.001 });
    applyChecked(model, plan.moves);
    // Fleet VMs may share hosts already; a move never adds a second one of a group to a host.
    for (const move of plan.moves) {
      const vm = model.vms.get(move.vmId)!;
      if (!vm.facts.fact('tags')?.toString().includes('tier:db')) continue;
      const env = (vm.facts.fact('tags') as string[]).find((t) => t.startsWith('env:'));
      const together = [...model.host(move.toHostId).vms]
        .map((id) => model.vms.get(id)!)
        .filter((other) => {
          const tags = other.facts.fact('tags') as string[];
          return tags.includes('tier:db') && tags.includes(env!);
        });
      assert.equal(together.length, 1, `${vm.name} is alone of its group on ${move.toHostName}`);
    }
  });

  test('consolidation empties the least loaded hosts wholly, and fills no host above the target load', () => {
    const model = fixtureModel(simulatedFleetIndex({ ...fleet, vmsPerHost: 3 }), [tight]);
    const plan = planRebalance(model, {
      mode: 'consolidate',
      maxMoves: 60,
      minBenefit: 0,
      consolidateBelow: 0.3,
      targetLoad: 0.7,
    });
    assert.ok(plan.hostsEmptied.length > 0);
    assert.ok(plan.moves.length <= 60);
    const emptied = new Set(plan.hostsEmptied);
    for (const move of plan.moves)
      assert.ok(emptied.has(move.fromHostId), 'moves only off emptied hosts');
    applyChecked(model, plan.moves);
    for (const id of emptied) assert.equal(model.host(id).vms.size, 0, 'emptied wholly');
    for (const move of plan.moves) assert.ok(loadOf(model.host(move.toHostId)) <= 0.7 + 1e-9);
    assert.equal(plan.after.emptyHosts, plan.before.emptyHosts + emptied.size);
  });

  test('consolidation of a fleet where every host is light still empties hosts: a later one takes an earlier one', () => {
    const model = fixtureModel(
      simulatedFleetIndex({
        seed: 5,
        datacenters: 1,
        clustersPerDatacenter: 1,
        hostsPerCluster: 4,
        vmsPerHost: 1,
      }),
      [],
    );
    const light = model.hosts.filter((host) => host.vms.size > 0);
    assert.ok(light.length >= 2 && light.every((host) => loadOf(host) <= 0.3));
    const plan = planRebalance(model, {
      mode: 'consolidate',
      maxMoves: 60,
      minBenefit: 0,
      consolidateBelow: 0.3,
      targetLoad: 0.8,
    });
    assert.ok(plan.hostsEmptied.length >= 1, JSON.stringify(plan.moves));
    const emptied = new Set(plan.hostsEmptied);
    for (const move of plan.moves)
      assert.ok(!emptied.has(move.toHostId), 'never onto an emptied host');
    applyChecked(model, plan.moves);
    for (const id of emptied) assert.equal(model.host(id).vms.size, 0);
  });

  test('consolidation never moves VMs onto a host with none: it frees no host', () => {
    const model = fixtureModel(
      simulatedFleetIndex({
        seed: 5,
        datacenters: 1,
        clustersPerDatacenter: 1,
        hostsPerCluster: 2,
        vmsPerHost: 1,
      }),
      [],
    );
    // Everything on the first host; the second is free already.
    const [busy, idle] = model.hosts;
    for (const vm of [...idle!.vms].map((id) => model.vms.get(id)!)) model.move(vm, busy!);
    assert.ok(idle!.vms.size === 0 && loadOf(busy!) <= 0.3);
    const plan = planRebalance(model, {
      mode: 'consolidate',
      maxMoves: 60,
      minBenefit: 0,
      consolidateBelow: 0.3,
      targetLoad: 0.8,
    });
    assert.deepEqual(plan.moves, []);
  });

  test('a rebalancing plan can always be scheduled: the planner orders its moves in time', () => {
    const model = fixtureModel(simulatedFleetIndex(fleet), [tight]);
    const plan = planRebalance(model, { mode: 'balance', maxMoves: 40, minBenefit: 0.01 });
    const schedule = scheduleMoves(model, plan.moves);
    assert.equal(schedule.moves.length, plan.moves.length);
    assert.ok(schedule.predictedCompletionMs > 0);
  });
});
