import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { isZenithError } from '../../src/core/errors.js';
import type { ActionProgress, DiscoveredVm } from '../../src/hypervisors/driver.js';
import { SimulatedDriver } from '../../src/hypervisors/simulated/simulated-driver.js';

const fleet = {
  seed: 7,
  datacenters: 1,
  clustersPerDatacenter: 2,
  hostsPerCluster: 2,
  vmsPerHost: 10,
};
const noProgress = { signal: new AbortController().signal, progress: () => undefined };

function vmsOf(objects: { kind: string }[]): DiscoveredVm[] {
  return objects.filter((o) => o.kind === 'vm') as DiscoveredVm[];
}

test('the same settings give the same fleet, labelled simulated', async () => {
  const a = await new SimulatedDriver({ clock: new ManualClock(), fleet }).discover();
  const b = await new SimulatedDriver({ clock: new ManualClock(), fleet }).discover();
  assert.deepEqual(a, b);
  assert.equal(vmsOf(a.objects).length, 40);
  assert.ok(
    vmsOf(a.objects).some((vm) => vm.powerState === 'stopped') &&
      vmsOf(a.objects).some((vm) => vm.powerState === 'running'),
  );
  assert.equal(a.objects.filter((o) => o.kind === 'host').length, 4);
  assert.ok(
    vmsOf(a.objects).every(
      (vm) => vm.facts['vm.simulated'] === true && vm.facts['hypervisor.type'] === 'simulated',
    ),
  );
});

test('a start takes its simulated time on the injected clock, then reports the new state', async () => {
  const clock = new ManualClock();
  const driver = new SimulatedDriver({ clock, fleet });
  const stopped = vmsOf((await driver.discover()).objects).find(
    (vm) => vm.powerState === 'stopped',
  )!;
  let done: DiscoveredVm | undefined;
  const result = () => done;
  void driver.startVm(stopped.externalId, noProgress).then((vm) => (done = vm));
  await clock.advance(1400);
  assert.equal(result(), undefined, 'not yet after 1.4 s');
  await clock.advance(100);
  assert.equal(result()?.powerState, 'running');
  await assert.rejects(
    driver.startVm(stopped.externalId, noProgress),
    (e) => isZenithError(e) && e.code === 'ZEN_INVALID_STATE',
  );
});

test('a migration of a suspended VM lasts memory ÷ bandwidth and reports progress with bytes', async () => {
  const clock = new ManualClock();
  const driver = new SimulatedDriver({ clock, fleet, migrationBytesPerSecond: 1024 ** 3 });
  const objects = (await driver.discover()).objects;
  const vm = vmsOf(objects).find((v) => v.powerState === 'suspended')!;
  const target = objects.find((o) => o.kind === 'host' && o.externalId !== vm.hostExternalId)!;
  const updates: ActionProgress[] = [];
  const started = clock.now();
  let finished: number | undefined;
  const migration = driver
    .migrateVm(vm.externalId, target.externalId, {
      signal: new AbortController().signal,
      progress: (p) => updates.push(p),
    })
    .then((v) => {
      finished = clock.now();
      return v;
    });
  while (finished === undefined) await clock.advance(50);
  const moved = await migration;
  const expectedMs = 300 + ((vm.facts['memory.bytes'] as number) / 1024 ** 3) * 1000;
  assert.ok(
    Math.abs(finished - started - expectedMs) <= 50,
    `took ${finished - started} ms, expected about ${expectedMs}`,
  );
  assert.equal(moved.hostExternalId, target.externalId);
  assert.equal(updates.at(-1)?.percent, 100);
  assert.equal(updates.at(-1)?.details?.bytesRemaining, 0);
});

test('a running VM sends its memory again for what it dirtied (pre-copy); a stopped VM only moves its definition', async () => {
  const clock = new ManualClock();
  const bandwidth = 1024 ** 3;
  const driver = new SimulatedDriver({ clock, fleet, migrationBytesPerSecond: bandwidth });
  const objects = (await driver.discover()).objects;
  const duration = async (vm: DiscoveredVm) => {
    const target = objects.find((o) => o.kind === 'host' && o.externalId !== vm.hostExternalId)!;
    const started = clock.now();
    let finished: number | undefined;
    const migration = driver
      .migrateVm(vm.externalId, target.externalId, {
        signal: new AbortController().signal,
        progress: () => {},
      })
      .then(() => (finished = clock.now()));
    while (finished === undefined) await clock.advance(10);
    await migration;
    return finished - started;
  };
  const running = vmsOf(objects).find((v) => v.powerState === 'running')!;
  const memory = running.facts['memory.bytes'] as number;
  const dirty = running.facts['memory.dirtyBytesPerSecond'] as number;
  assert.ok(dirty > 0, 'a running guest dirties memory');
  // Two passes at least: the memory, then what was dirtied while it was sent.
  const atLeast = 300 + ((memory + (memory * dirty) / bandwidth) / bandwidth) * 1000;
  const took = await duration(running);
  assert.ok(
    took >= atLeast - 10 && took <= atLeast * 1.1,
    `took ${took} ms, expected about ${atLeast}`,
  );
  const stopped = vmsOf(objects).find((v) => v.powerState === 'stopped')!;
  assert.ok((await duration(stopped)) <= 310, 'a stopped VM moves in the set-up time');
});

test('the journal keeps the simulated hypervisor state across a new driver instance', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-sim-'));
  try {
    const clock = new ManualClock();
    const journalPath = join(dir, 'sim.journal');
    const first = new SimulatedDriver({ clock, fleet, journalPath, timeScale: 0 });
    const vm = vmsOf((await first.discover()).objects).find((v) => v.powerState === 'running')!;
    await first.suspendVm(vm.externalId, noProgress);
    const second = new SimulatedDriver({ clock, fleet, journalPath, timeScale: 0 });
    const again = vmsOf((await second.discover()).objects).find(
      (v) => v.externalId === vm.externalId,
    )!;
    assert.equal(again.powerState, 'suspended');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an aborted action leaves the VM as it was', async () => {
  const clock = new ManualClock();
  const driver = new SimulatedDriver({ clock, fleet });
  const vm = vmsOf((await driver.discover()).objects).find((v) => v.powerState === 'running')!;
  const controller = new AbortController();
  const suspending = driver.suspendVm(vm.externalId, {
    signal: controller.signal,
    progress: () => undefined,
  });
  await clock.advance(100);
  controller.abort(new Error('cancelled'));
  await assert.rejects(suspending, /cancelled/);
  const after = vmsOf((await driver.discover()).objects).find(
    (v) => v.externalId === vm.externalId,
  )!;
  assert.equal(after.powerState, 'running');
});

test('a clone of a stopped VM is a new stopped VM like it; a linked clone keeps its source from deletion', async () => {
  const driver = new SimulatedDriver({ clock: new ManualClock(), fleet, timeScale: 0 });
  const all = vmsOf((await driver.discover()).objects);
  const source = all.find((v) => v.powerState === 'stopped')!;
  const full = await driver.cloneVm(source.externalId, { name: 'twin' }, noProgress);
  assert.notEqual(full.externalId, source.externalId);
  assert.deepEqual(
    [
      full.name,
      full.powerState,
      full.hostExternalId,
      full.facts['cpu.count'],
      full.facts['memory.bytes'],
    ],
    [
      'twin',
      'stopped',
      source.hostExternalId,
      source.facts['cpu.count'],
      source.facts['memory.bytes'],
    ],
  );
  const linked = await driver.cloneVm(
    source.externalId,
    { name: 'linked-twin', linked: true },
    noProgress,
  );
  const coded = (code: string) => (e: unknown) => isZenithError(e) && e.code === code;
  await assert.rejects(driver.deleteVm(source.externalId, noProgress), coded('ZEN_CONFLICT'));
  await driver.deleteVm(linked.externalId, noProgress);
  await driver.deleteVm(source.externalId, noProgress);

  const running = all.find((v) => v.powerState === 'running')!;
  await assert.rejects(
    driver.cloneVm(running.externalId, { name: 'nope' }, noProgress),
    coded('ZEN_INVALID_STATE'),
  );
  await assert.rejects(
    driver.cloneVm(full.externalId, { name: all[0]!.name }, noProgress),
    coded('ZEN_CONFLICT'),
  );
  await assert.rejects(
    driver.cloneVm(full.externalId, { name: 'bad name' }, noProgress),
    coded('ZEN_BAD_REQUEST'),
  );
  assert.equal(
    vmsOf((await driver.discover()).objects).length,
    all.length,
    'net: twin in, source out',
  );
});
