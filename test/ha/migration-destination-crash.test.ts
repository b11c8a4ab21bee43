/**
 * The destination host of a live migration crashes just after the switch-over, while `zenith
 * serve` is down (killed with SIGKILL in the middle of the migration, so nobody told the
 * destination to resume the VM or the inventory that it moved): after the restart, the migration
 * leaves the VM to the failed host — the source's paused copy goes — and high availability runs it
 * again, from its disks, on the host that is left, exactly once. The fault campaign's seed 2 found
 * this (the VM waited, paused at the source, until the crashed host came back). Hosts are `zenith
 * agent`s in their own network and PID namespaces with a shared storage directory
 * (src/testing/ha-lab.ts); no BMC, so the lease fences.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ApiAnswer } from '../../src/testing/control-plane.js';
import { startHaLab, type HaLab } from '../../src/testing/ha-lab.js';
import { until } from '../../src/testing/wait.js';

let lab: HaLab;
before(async () => {
  lab = await startHaLab({
    hosts: ['y-b', 'y-c'],
    prefix: 'zenith-migration-dest-crash-',
    ha: { failureDetectionSeconds: 3, selfFenceSeconds: 3 },
  });
});
after(async () => {
  await lab?.close();
});

test('a live migration whose destination crashes after the switch-over, zenith serve down meanwhile: the VM runs once, on the source host, restarted by HA', async (t) => {
  const ok = (method: string, path: string, body?: unknown) => lab.ok(method, path, body);
  const vmId = await lab.runVm('mig-dest', 'y-b');
  // Restarted from its description: a fault before it is taken would leave nothing to run.
  await lab.protectedVm(vmId);
  const uuid = (await ok('GET', `/vms/${vmId}`)).facts['vm.uuid'] as string;
  const sourcePid = (await lab.qemus()).find((q) => q.uuid === uuid)!.pid;
  const taskId = await lab.slowMigration(vmId, 'y-c', 20_000_000);
  const crashed = { at: 0 };
  await lab.restartServer('SIGKILL', async () => {
    // With nobody to tell the destination to resume it, the switch-over leaves both copies
    // paused: the source's QEMU stops using CPU once it has sent the VM.
    await until(
      'the switch-over (the source copy paused)',
      async () => {
        const before = (await lab.qemus()).find((q) => q.uuid === uuid && q.host === 'y-b');
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        const after = (await lab.qemus()).find((q) => q.uuid === uuid && q.host === 'y-b');
        return before && after && after.cpuTicks - before.cpuTicks <= 2 ? true : undefined;
      },
      60_000,
      100,
    );
    // A power loss of the destination: its network first, then everything in it at once.
    crashed.at = Date.now();
    await lab.lab.cutNetwork(lab.physical['y-c']!);
    await lab.machines['y-c']!.stop();
  });

  // Run again from its disks: a new QEMU, not the paused copy the migration left at the source.
  const runningOnce = async () => {
    const qemus = (await lab.qemus()).filter((q) => q.uuid === uuid);
    const vm = await ok('GET', `/vms/${vmId}`);
    return qemus.length === 1 &&
      qemus[0]!.host === 'y-b' &&
      qemus[0]!.pid !== sourcePid &&
      !qemus[0]!.incoming &&
      vm.status === 'present' &&
      vm.facts['power.state'] === 'running' &&
      vm.computed['location.hostName'] === 'y-b'
      ? true
      : undefined;
  };
  let seen = '';
  await until(
    () => `mig-dest running once on y-b\n${seen}\n${lab.server.output().slice(-3000)}`,
    async () => {
      const done = await runningOnce();
      if (!done)
        seen = JSON.stringify({
          qemus: (await lab.qemus()).filter((q) => q.uuid === uuid),
          vm: await ok('GET', `/vms/${vmId}`),
          task: await ok('GET', `/tasks/${taskId}`),
          failovers: await ok('GET', '/ha/failovers'),
        });
      return done;
    },
    120_000,
    500,
  );
  t.diagnostic(
    `running once on y-b ${((Date.now() - crashed.at) / 1000).toFixed(1)} s after the crash`,
  );
  for (let look = 0; look < 3; look++) {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.equal(await runningOnce(), true, 'still exactly one QEMU, on y-b');
  }
  const [first, second] = await lab.consoleTicks(vmId, 2);
  assert.ok(second! > first!, 'its guest runs');
  // Its history says where it went: to y-c by the migration, back to y-b by the failover.
  const history = (await ok('GET', `/vms/${vmId}/location-history`)).items as ApiAnswer[];
  assert.deepEqual(
    history.slice(0, 3).map((h) => [h.hostName, h.reason ?? null]),
    [
      ['y-b', 'failover'],
      ['y-c', null],
      ['y-b', null],
    ],
    JSON.stringify(history),
  );
  const task = await lab.taskEnded(taskId, 60_000);
  assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
  assert.equal(await runningOnce(), true, 'exactly one QEMU, on y-b, after the migration ended');
});
