/**
 * A live migration is durable: the control plane (`zenith serve`, a real process with its SQLite
 * data directory) is killed with SIGKILL in the middle of one, started again, and the migration
 * ends with the VM running exactly once — counted as QEMU processes across the hosts' PID
 * namespaces, and by its guest's console counting on. The hosts are `zenith agent`s in their own
 * network and PID namespaces (src/testing/physical-hosts.ts) with a shared storage directory.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ApiAnswer } from '../../src/testing/control-plane.js';
import { startHaLab, type HaLab } from '../../src/testing/ha-lab.js';
import { until } from '../../src/testing/wait.js';

describe('a control plane killed in the middle of a live migration finishes it after a restart', () => {
  let lab: HaLab;
  const ok = (method: string, path: string, body?: unknown) => lab.ok(method, path, body);

  before(async () => {
    lab = await startHaLab({ hosts: ['k-b', 'k-c'], prefix: 'zenith-migration-kill-' });
  });
  after(async () => {
    await lab?.close();
  });

  /**
   * A VM started on k-b and its live migration to k-c, slowed so that a kill lands in the middle
   * of it: answered once it is under way, with the guest's console tick before. The guest's
   * migration sends roughly 90 MB: at 6 MB/s (the default) it lasts some 15 s, time for a restarted
   * control plane to be back before it ends; a migration meant to end while the control plane is
   * down only needs to outlast the kill, and goes faster.
   */
  const slowMigration = async (name: string, bytesPerSecond = 6_000_000) => {
    for (const host of ['k-b', 'k-c']) await lab.connected(host);
    const vmId = await lab.runVm(name, 'k-b');
    const uuid = (await ok('GET', `/vms/${vmId}`)).facts['vm.uuid'] as string;
    const [ticked] = await lab.consoleTicks(vmId, 1);
    const taskId = await lab.slowMigration(vmId, 'k-c', bytesPerSecond);
    return { vmId, uuid, taskId, ticked: ticked! };
  };

  const ended = (taskId: string) => lab.taskEnded(taskId);

  /** The VM's QEMU processes across the hosts, and whether each one's guest uses CPU (runs). */
  const qemusOf = async (uuid: string) => {
    const first = (await lab.qemus()).filter((q) => q.uuid === uuid);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const second = (await lab.qemus()).filter((q) => q.uuid === uuid);
    // A paused guest's QEMU hardly uses CPU (its main loop only); a running one's clock ticks.
    return second.map((q) => ({
      host: q.host,
      paused: q.cpuTicks - (first.find((f) => f.pid === q.pid)?.cpuTicks ?? q.cpuTicks) <= 3,
    }));
  };

  /** With the control plane down, QEMU finishes sending: both QEMUs are there, neither runs the guest. */
  const switchedOver = (uuid: string) =>
    until(
      'the switch-over without the control plane',
      async () => {
        const ends = await qemusOf(uuid);
        return ends.length === 2 && ends.every((end) => end.paused) ? ends : undefined;
      },
      120_000,
      500,
    );

  const assertMovedOnce = async (vmId: string, uuid: string, task: ApiAnswer, ticked: number) => {
    assert.equal(task.state, 'succeeded', JSON.stringify(task));
    const vm = await ok('GET', `/vms/${vmId}`);
    assert.equal(vm.computed['location.hostName'], 'k-c');
    assert.equal(vm.facts['power.state'], 'running');
    assert.equal(vm.status, 'present');
    assert.deepEqual(
      (await qemusOf(uuid)).map((q) => q.host),
      ['k-c'],
      'one QEMU, on k-c',
    );
    const [first, second] = await lab.consoleTicks(vmId, 2);
    assert.ok(second! > first! && first! > ticked, `the same guest runs on: ${ticked} → ${first}`);
    const listed = (await ok('GET', `/vms?filter=name=${vm.name as string}`)).items as ApiAnswer[];
    assert.equal(listed.length, 1, 'listed once');
    const hosts = ((await ok('GET', `/vms/${vmId}/location-history`)).items as ApiAnswer[]).map(
      (row) => row.hostName,
    );
    assert.deepEqual([...new Set(hosts)], ['k-c', 'k-b'], 'it ran on k-b, then on k-c');
  };

  test('a live migration cut by a SIGKILL of zenith serve, which is back before it ends, finishes: the VM runs once, on the destination', async (t) => {
    const { vmId, uuid, taskId, ticked } = await slowMigration('mig-quick');
    await lab.restartServer('SIGKILL');
    const task = await ended(taskId);
    await assertMovedOnce(vmId, uuid, task, ticked);
    t.diagnostic(`attempts ${task.attempt as number}`);
  });

  test('a live migration whose switch-over happens while zenith serve is down: the guest waits paused at both ends, never runs twice, and resumes on the destination once it is back', async (t) => {
    const { vmId, uuid, taskId, ticked } = await slowMigration('mig-down', 20_000_000);
    await lab.server.kill('SIGKILL');
    // With the control plane down, QEMU finishes sending: both QEMUs are there, neither runs the guest.
    const switched = await switchedOver(uuid);
    assert.deepEqual(switched.map((end) => end.host).sort(), ['k-b', 'k-c']);
    const back = Date.now();
    await lab.restartServer('SIGKILL');
    const task = await ended(taskId);
    t.diagnostic(`resumed on k-c ${Date.now() - back} ms after zenith serve was started again`);
    await assertMovedOnce(vmId, uuid, task, ticked);
  });

  test('a switch-over while zenith serve is down, and both hosts’ agents killed and started again before it is back: the guest waits paused, and runs once, on the destination', async () => {
    const { vmId, uuid, taskId, ticked } = await slowMigration('mig-agents', 20_000_000);
    await lab.server.kill('SIGKILL');
    await switchedOver(uuid);
    // The source's agent, back, finds its migration completed and ends its copy; the destination's
    // keeps the whole VM it received, paused, for the control plane to finish.
    for (const host of ['k-b', 'k-c']) {
      await lab.lab.killAgent(lab.physical[host]!);
      await lab.lab.startAgent(lab.physical[host]!);
    }
    await lab.restartServer('SIGKILL');
    const task = await ended(taskId);
    await assertMovedOnce(vmId, uuid, task, ticked);
  });
});
