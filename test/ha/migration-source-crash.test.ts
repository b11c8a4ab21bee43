/**
 * The source host of a live migration crashes, and `zenith serve` is killed with SIGKILL moments
 * later, in the middle of the failover (the crash a power loss: the destination never hears the
 * migration's stream end): after the restart, high availability restarts the VM on
 * the destination host — where the reception of the cut-off migration was — exactly once, and
 * the migration ends as failed. Hosts are `zenith agent`s in their own network and PID namespaces
 * with a shared storage directory (src/testing/ha-lab.ts); no BMC, so the lease fences.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ApiAnswer } from '../../src/testing/control-plane.js';
import { startHaLab, type HaLab } from '../../src/testing/ha-lab.js';
import { until } from '../../src/testing/wait.js';

let lab: HaLab;
before(async () => {
  lab = await startHaLab({
    hosts: ['x-b', 'x-c'],
    prefix: 'zenith-migration-crash-',
    ha: { failureDetectionSeconds: 3, selfFenceSeconds: 3 },
  });
});
after(async () => {
  await lab?.close();
});

test('a live migration whose source host crashes, with zenith serve killed during the failover: the VM runs once, on the destination', async (t) => {
  const ok = (method: string, path: string, body?: unknown) => lab.ok(method, path, body);
  const vmId = await lab.runVm('mig-crash', 'x-b');
  // Restarted from its description: a fault before it is taken would leave nothing to run.
  await lab.protectedVm(vmId);
  const uuid = (await ok('GET', `/vms/${vmId}`)).facts['vm.uuid'] as string;
  const taskId = await lab.slowMigration(vmId, 'x-c', 2_000_000);
  // A power loss: the host says nothing more, not even the end of the migration's stream (its
  // network goes first), so the destination's QEMU goes on waiting for the rest of the VM.
  const crashed = Date.now();
  await lab.lab.cutNetwork(lab.physical['x-b']!);
  await lab.machines['x-b']!.stop();
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  await lab.restartServer('SIGKILL');

  // Once on x-c, running a guest, and for good: three looks a few seconds apart.
  const runningOnce = async () => {
    const qemus = (await lab.qemus()).filter((q) => q.uuid === uuid);
    const vm = await ok('GET', `/vms/${vmId}`);
    return qemus.length === 1 &&
      qemus[0]!.host === 'x-c' &&
      !qemus[0]!.incoming &&
      vm.facts['power.state'] === 'running' &&
      vm.computed['location.hostName'] === 'x-c'
      ? true
      : undefined;
  };
  await until(
    () => `mig-crash running once on x-c\n${lab.server.output().slice(-5000)}`,
    runningOnce,
    150_000,
    500,
  );
  t.diagnostic(
    `running once on x-c ${((Date.now() - crashed) / 1000).toFixed(1)} s after the crash`,
  );
  for (let look = 0; look < 3; look++) {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.equal(await runningOnce(), true, 'still exactly one QEMU, on x-c');
  }
  const [first, second] = await lab.consoleTicks(vmId, 2);
  assert.ok(second! > first!, 'its guest runs');
  const history = (await ok('GET', `/vms/${vmId}/location-history`)).items as ApiAnswer[];
  assert.equal(history[0]?.hostName, 'x-c');
  assert.equal(history[0]?.reason, 'failover');

  // The migration ends, failed (the VM did not move by it, it was restarted), as soon as the
  // restart is known — and never brings a second copy.
  const task = await lab.taskEnded(taskId, 150_000);
  t.diagnostic(`migration task ${task.state as string}: ${JSON.stringify(task.error ?? null)}`);
  const error = task.error as { code: string; message: string } | undefined;
  assert.equal(task.state, 'failed');
  assert.equal(error?.code, 'ZEN_INVALID_STATE');
  assert.match(error?.message ?? '', /restarted on x-c by high availability/);
  assert.equal(await runningOnce(), true, 'exactly one QEMU, on x-c, after the migration ended');
});
