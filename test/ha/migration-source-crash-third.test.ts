/**
 * The source host of a live migration crashes (a power loss: the destination never hears the
 * stream end) while the control plane runs on, and high availability restarts the VM on a third
 * host: the destination's unfinished reception, whose QEMU holds the VM's disk locks, is removed as
 * soon as the source's host is declared failed, so the restart takes the disks; the VM runs once,
 * and the migration ends, failed, within a minute rather than after its ten-minute grace.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startHaLab, type HaLab } from '../../src/testing/ha-lab.js';
import { until } from '../../src/testing/wait.js';

let lab: HaLab;
before(async () => {
  lab = await startHaLab({
    hosts: ['y-b', 'y-c', 'y-d'],
    prefix: 'zenith-migration-third-',
    ha: { failureDetectionSeconds: 3, selfFenceSeconds: 3 },
  });
});
after(async () => {
  await lab?.close();
});

test('a live migration whose source host crashes: the reception on the destination goes once the source is declared failed, and the VM restarts on a third host, once', async (t) => {
  const ok = (method: string, path: string, body?: unknown) => lab.ok(method, path, body);
  const vmId = await lab.runVm('mig-third', 'y-b');
  // Restarted from its description: a fault before it is taken would leave nothing to run.
  await lab.protectedVm(vmId);
  // The destination holds a VM already: the third host is the emptier for the restart.
  await lab.runVm('filler', 'y-c');
  const uuid = (await ok('GET', `/vms/${vmId}`)).facts['vm.uuid'] as string;
  const taskId = await lab.slowMigration(vmId, 'y-c', 2_000_000);
  const crashed = Date.now();
  await lab.lab.cutNetwork(lab.physical['y-b']!);
  await lab.machines['y-b']!.stop();

  let seen = '';
  const runningOnce = async () => {
    const qemus = (await lab.qemus()).filter((q) => q.uuid === uuid);
    const vm = await ok('GET', `/vms/${vmId}`);
    seen = `${JSON.stringify(qemus)}; inventory ${String(vm.facts['power.state'])} on ${String(vm.computed['location.hostName'])}`;
    return qemus.length === 1 &&
      !qemus[0]!.incoming &&
      qemus[0]!.host !== 'y-b' &&
      vm.facts['power.state'] === 'running' &&
      vm.computed['location.hostName'] === qemus[0]!.host
      ? qemus[0]!.host
      : undefined;
  };
  const host = await until(
    () =>
      `mig-third running once: ${seen}\n${lab.server
        .output()
        .split('\n')
        .filter((line) => !line.includes('"component":"http"'))
        .join('\n')
        .slice(-6000)}`,
    runningOnce,
    120_000,
    500,
  );
  t.diagnostic(
    `running once on ${host} ${((Date.now() - crashed) / 1000).toFixed(1)} s after the crash`,
  );
  const task = await lab.taskEnded(taskId, 60_000);
  assert.equal(task.state, 'failed');
  t.diagnostic(`migration task failed: ${JSON.stringify(task.error ?? null)}`);
  for (let look = 0; look < 2; look++) {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.equal(await runningOnce(), host, 'still exactly one QEMU, no reception left');
  }
  const [first, second] = await lab.consoleTicks(vmId, 2);
  assert.ok(second! > first!, 'its guest runs');
});
