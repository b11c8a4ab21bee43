/**
 * The what-if of a host failure and admission control, on placement models built from fixtures:
 * where each protected VM of failed hosts would run again, who gets the last room, which
 * combinations of failures are tried, and what a creation or a start is refused for.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  admit,
  combinations,
  failureSets,
  hostsInScope,
  recoverability,
  toleranceOf,
} from '../../../src/services/ha/admission.js';
import { whatIf } from '../../../src/services/ha/what-if.js';
import { HaAdmission } from '../../../src/services/ha/admission-service.js';
import type { ZenithError } from '../../../src/core/errors.js';
import type { PlacementService } from '../../../src/services/placement/placement-service.js';
import type { PlacementModel } from '../../../src/services/placement/placement-model.js';
import type { PolicyInput } from '../../../src/services/policy/policy-document.js';
import {
  fixtureIndex,
  fixtureModel,
  simulatedFleetIndex,
  type FixtureHost,
  type FixtureVm,
} from '../../../src/testing/placement-fixtures.js';

const GiB = 1024 ** 3;

const haOn = (hostFailuresToTolerate = 1): PolicyInput => ({
  name: 'ha-on',
  scope: { kind: 'global' },
  settings: { ha: { enabled: true, hostFailuresToTolerate } },
});

/** Three hosts of 64 GiB, each running two protected VMs of 20 GiB: 24 GiB free on each. */
function threeHosts(policies: PolicyInput[] = [haOn()], more: FixtureVm[] = []): PlacementModel {
  const hosts: FixtureHost[] = ['h1', 'h2', 'h3'].map((name) => ({ name, memoryGiB: 64 }));
  const vms: FixtureVm[] = hosts.flatMap((host) =>
    ['a', 'b'].map((suffix) => ({
      name: `${host.name}-${suffix}`,
      host: host.name,
      memoryGiB: 20,
    })),
  );
  return fixtureModel(fixtureIndex(hosts, [...vms, ...more]), policies);
}

/** Admission control over a fresh model of the fixture for each decision, as the service builds one. */
function admissionOver(build: () => PlacementModel): HaAdmission {
  const placement = { model: build } as unknown as PlacementService;
  return new HaAdmission({ placement, policies: { index: build().policies } });
}

/** Where every VM is and what every host has in use: what must be the same after a what-if. */
function snapshot(model: PlacementModel): string {
  const vms = [...model.vms.values()].map((vm) => `${vm.id}@${vm.home}:${vm.active}`).sort();
  const hosts = model.hosts.map(
    (h) => `${h.name}:${h.cpuUsed}/${h.memoryUsed}:${[...h.vms].sort().join('+')}`,
  );
  return [...vms, ...hosts].join(',');
}

describe('what if hosts fail', () => {
  test('one host failing: each of its protected VMs restarts on a host with room; two failing: the last host takes one and the rest cannot restart', () => {
    const model = threeHosts();
    const before = snapshot(model);
    const one = whatIf(model, [model.host('host:h1')]);
    assert.equal(one.unrecoverable, 0);
    assert.deepEqual(
      one.restarts.map((r) => r.vmName),
      ['h1-a', 'h1-b'],
    );
    const targets = one.restarts.map((r) => r.toHostName).sort();
    assert.deepEqual(targets, ['h2', 'h3'], 'one on each host with 24 GiB free');

    const two = whatIf(model, [model.host('host:h1'), model.host('host:h2')]);
    assert.deepEqual(
      two.restarts.map((r) => [r.vmName, r.toHostName]),
      [
        ['h1-a', 'h3'],
        ['h1-b', null],
        ['h2-a', null],
        ['h2-b', null],
      ],
    );
    assert.equal(two.unrecoverable, 3);
    for (const lost of two.restarts.slice(1))
      assert.deepEqual(lost.rejectedByReason, { capacity: 1 }, 'h3 is full; failed hosts are out');
    assert.equal(snapshot(model), before, 'the model is as it was');
  });

  test('priority decides who gets the last room, order groups before priority, and unprotected or stopped VMs are not restarted', () => {
    const hosts: FixtureHost[] = [
      { name: 'h1', memoryGiB: 64 },
      { name: 'h2', memoryGiB: 64 },
    ];
    const vms: FixtureVm[] = [
      { name: 'aa-low', host: 'h1', memoryGiB: 30 },
      { name: 'zz-high', host: 'h1', memoryGiB: 30 },
      { name: 'off', host: 'h1', memoryGiB: 2, power: 'stopped' },
      { name: 'never', host: 'h1', memoryGiB: 2 },
      { name: 'filler', host: 'h2', memoryGiB: 30 },
    ];
    const vmHa = (name: string, ha: Record<string, unknown>): PolicyInput => ({
      name: `ha-${name}`,
      scope: { kind: 'vm', id: `vm:${name}` },
      settings: { ha },
    });
    const policies = [
      haOn(0),
      vmHa('aa-low', { restartPriority: 'low' }),
      vmHa('zz-high', { restartPriority: 'highest' }),
      vmHa('never', { restartPriority: 'disabled' }),
    ];
    const model = fixtureModel(fixtureIndex(hosts, vms), policies);
    const before = snapshot(model);
    const report = whatIf(model, [model.host('host:h1')]);
    assert.deepEqual(
      report.restarts.map((r) => [r.vmName, r.priority, r.toHostName]),
      [
        ['zz-high', 'highest', 'h2'],
        ['aa-low', 'low', null],
      ],
      'the highest priority takes the 34 GiB left on h2; a stopped or disabled VM is not listed',
    );
    assert.equal(snapshot(model), before);

    // A lower order group is placed before a higher one, whatever their priorities.
    const grouped = fixtureModel(fixtureIndex(hosts, vms), [
      ...policies,
      vmHa('aa-low', { restartPriority: 'low', restartOrder: 1 }),
      vmHa('zz-high', { restartPriority: 'highest', restartOrder: 2 }),
    ]);
    assert.deepEqual(
      whatIf(grouped, [grouped.host('host:h1')]).restarts.map((r) => [r.vmName, r.toHostName]),
      [
        ['aa-low', 'h2'],
        ['zz-high', null],
      ],
    );
  });
});

describe('admission control', () => {
  test('combinations: all of them up to 2,000, biggest hosts first; past that the N biggest alone', () => {
    assert.equal(combinations(10, 2), 45);
    assert.equal(combinations(30, 1), 30);
    assert.equal(combinations(63, 2), 1953);
    assert.equal(combinations(64, 2), Infinity, '2,016 is too many');
    assert.equal(combinations(3, 5), 0);
    const hosts = threeHosts().hosts;
    const byName = (name: string): [number, number] => [Number(name.slice(1)), 0];
    const all = failureSets(hosts, 2, (h) => byName(h.name));
    assert.equal(all.exhaustive, true);
    assert.deepEqual(
      [...all.sets].map((set) => set.map((h) => h.name).join('+')),
      ['h3+h2', 'h3+h1', 'h2+h1'],
    );
    const fewer = failureSets(hosts, 5, (h) => byName(h.name));
    assert.deepEqual(
      [...fewer.sets].map((set) => set.length),
      [3],
      'tolerating more failures than there are hosts: all of them fail',
    );

    const model = fixtureModel(
      simulatedFleetIndex({
        seed: 4,
        clustersPerDatacenter: 1,
        hostsPerCluster: 30,
        vmsPerHost: 6,
      }),
      [haOn(3)],
    );
    const tolerance = toleranceOf(model, model.hosts[0]!)!;
    const scoped = hostsInScope(model, tolerance);
    assert.equal(scoped.length, 30);
    const held = (h: (typeof scoped)[number]): [number, number] => [h.memoryUsed, h.cpuUsed];
    const approximated = failureSets(scoped, 3, held);
    assert.equal(approximated.exhaustive, false, 'C(30, 3) = 4,060 combinations');
    const [only] = [...approximated.sets];
    const biggest = [...scoped]
      .sort((a, b) => b.memoryUsed - a.memoryUsed || b.cpuUsed - a.cpuUsed || a.index - b.index)
      .slice(0, 3);
    assert.deepEqual(only!.map((h) => h.name).sort(), biggest.map((h) => h.name).sort());
  });

  test('tolerating one failure holds on the fleet, two does not, and the refusal names the hosts and the VMs', () => {
    const one = threeHosts([haOn(1)]);
    const before = snapshot(one);
    const holds = recoverability(one, toleranceOf(one, one.hosts[0]!)!);
    assert.equal(holds.failure, null);
    assert.equal(holds.tried, 3);
    assert.equal(holds.exhaustive, true);
    assert.equal(snapshot(one), before, 'the model is as it was');

    const two = threeHosts([haOn(2)]);
    const breaks = recoverability(two, toleranceOf(two, two.hosts[0]!)!);
    assert.equal(breaks.failure?.failedHosts.length, 2);
    assert.equal(breaks.failure?.unrecoverable, 3);
    assert.equal(breaks.tried, 1, 'the first combination already fails');
  });

  test('a new VM is refused where one host failing could not be recovered from, and admitted where it could', () => {
    const model = threeHosts();
    const small = model.draftVm({ name: 'small', cpus: 1, memoryBytes: 4 * GiB });
    model.place(small, model.host('host:h1'));
    assert.equal(admit(model, 'create', small, model.host('host:h1')), null);

    const other = threeHosts();
    const big = other.draftVm({ name: 'big', cpus: 1, memoryBytes: 10 * GiB });
    other.place(big, other.host('host:h1'));
    const refusal = admit(other, 'create', big, other.host('host:h1'));
    assert.equal(refusal?.code, 'ZEN_HA_ADMISSION');
    assert.match(refusal.message, /creating big on h1/);
    assert.match(refusal.message, /if h1 failed, no host could restart/);
    assert.deepEqual(
      (refusal.details.failedHosts as Array<{ name: string }>).map((h) => h.name),
      ['h1'],
    );
    const lost = refusal.details.unrecoverable as Array<{ vmName: string; vmId: string | null }>;
    assert.equal(lost.length, 1);
    assert.ok(['big', 'h1-a', 'h1-b'].includes(lost[0]!.vmName));
    assert.equal(refusal.details.hostFailuresToTolerate, 1);
  });

  test('a start is refused whenever a failure would not be survived, a move only when it is what breaks it, and nothing is asked with no tolerance set', () => {
    const stopped: FixtureVm = { name: 'off', host: 'h1', memoryGiB: 10, power: 'stopped' };
    const start = admissionOver(() => threeHosts([haOn(1)], [stopped]));
    assert.throws(
      () => start.admitStart('vm:off'),
      (error: ZenithError) =>
        error.code === 'ZEN_HA_ADMISSION' && /starting off on h1/.test(error.message),
    );
    const off = admissionOver(() => threeHosts([haOn(0)], [stopped]));
    assert.equal(off.enabled(), false);
    assert.doesNotThrow(() => off.admitStart('vm:off'));

    // Tolerating two failures of three full hosts is broken already: moves still go.
    const broken = admissionOver(() => threeHosts([haOn(2)], [stopped]));
    assert.doesNotThrow(() => broken.admitMigration('vm:h1-a', 'host:h3'));
    assert.throws(
      () => broken.admitStart('vm:off'),
      (error: ZenithError) => error.code === 'ZEN_HA_ADMISSION',
      'a start there is refused, as vSphere refuses power-ons',
    );
  });

  test('the tolerance comes from the most specific policy that sets it, and only its scope’s hosts fail', () => {
    const hosts: FixtureHost[] = [
      { name: 'a1', cluster: 'prod', memoryGiB: 64 },
      { name: 'a2', cluster: 'prod', memoryGiB: 64 },
      { name: 'b1', cluster: 'dev', memoryGiB: 64 },
    ];
    const model = fixtureModel(fixtureIndex(hosts, []), [
      haOn(0),
      {
        name: 'prod-tolerates-one',
        scope: { kind: 'cluster', id: 'cl:dc1/prod' },
        settings: { ha: { hostFailuresToTolerate: 1 } },
      },
    ]);
    assert.equal(toleranceOf(model, model.host('host:b1')), null, 'dev: 0 from the global policy');
    const prod = toleranceOf(model, model.host('host:a1'));
    assert.deepEqual(prod, {
      failures: 1,
      policy: 'prod-tolerates-one',
      scope: { kind: 'cluster', id: 'cl:dc1/prod', name: 'prod' },
    });
    assert.deepEqual(
      hostsInScope(model, prod).map((h) => h.name),
      ['a1', 'a2'],
    );
  });
});
