/**
 * A failover is durable: the control plane (`zenith serve`, a real process with its SQLite data
 * directory) is killed with SIGKILL in the middle of the failover of five VMs, started again, and
 * finishes it — every VM runs exactly once, counted as QEMU processes across the hosts' PID
 * namespaces. The hosts are `zenith agent`s in their own network and PID namespaces
 * (src/testing/physical-hosts.ts) with a shared storage directory; host A's machine is behind
 * Zenith's Redfish service simulator (a simulator of our own), which fences it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ApiAnswer } from '../../src/testing/control-plane.js';
import { startHaLab, type HaLab } from '../../src/testing/ha-lab.js';
import { until } from '../../src/testing/wait.js';

const priorities = ['highest', 'high', 'medium', 'low', 'lowest'] as const;

describe('a control plane killed in the middle of a failover finishes it after a restart', () => {
  let lab: HaLab;
  const ok = (method: string, path: string, body?: unknown) => lab.ok(method, path, body);
  const api = (method: string, path: string, body?: unknown) => lab.api(method, path, body);
  /** Every QEMU process across the hosts, by the VM UUID on its command line. */
  const qemuCounts = async () => {
    const counts = new Map<string, number>();
    for (const { uuid } of await lab.qemus()) counts.set(uuid, (counts.get(uuid) ?? 0) + 1);
    return counts;
  };

  before(async () => {
    lab = await startHaLab({
      hosts: ['k-a', 'k-b', 'k-c'],
      bmcHosts: ['k-a'],
      prefix: 'zenith-ha-kill-',
    });
  });
  after(async () => {
    await lab?.close();
  });

  test('five VMs fail over; SIGKILL of zenith serve mid-way; after its restart each runs exactly once', async (t) => {
    const vmIds: string[] = [];
    for (const [index, priority] of priorities.entries()) {
      const vmId = await lab.runVm(`vm-${index}`, 'k-a');
      vmIds.push(vmId);
      // One priority level each: the restarts go one after another, so there is a middle.
      await ok('POST', '/policies', {
        name: `p-${index}`,
        scope: { kind: 'vm', id: vmId },
        settings: { ha: { restartPriority: priority } },
      });
    }
    await ok('POST', '/policies', {
      name: 'ha',
      scope: { kind: 'global' },
      settings: { ha: { enabled: true, failureDetectionSeconds: 3, selfFenceSeconds: 3 } },
    });
    await until(
      'all five protected',
      async () => {
        const vms = ((await ok('GET', '/ha/vms')).items as ApiAnswer[]).filter((vm) =>
          vmIds.includes(vm.vmId as string),
        );
        return vms.length === 5 && vms.every((vm) => vm.state === 'protected') ? true : undefined;
      },
      60_000,
      250,
    );
    const uuids = await Promise.all(
      vmIds.map(async (id) => (await ok('GET', `/vms/${id}`)).facts['vm.uuid'] as string),
    );
    const before = await qemuCounts();
    for (const uuid of uuids) assert.equal(before.get(uuid), 1, 'each runs once on A');

    // Host A crashes; the failover starts; zenith serve is killed once some, not all, run again.
    await lab.machines['k-a']!.stop();
    const middle = await until(
      'the failover half-way',
      async () => {
        const [failover] = ((await api('GET', '/ha/failovers')).body?.items ?? []) as ApiAnswer[];
        const restarts = (failover?.restarts ?? []) as ApiAnswer[];
        const started = restarts.filter((r) => r.state === 'running' || r.state === 'starting');
        return started.length >= 1 && started.length < 5 ? { failover, started } : undefined;
      },
      60_000,
      20,
    );
    await lab.server.kill('SIGKILL');
    t.diagnostic(
      `killed with ${middle.started.length} of 5 restarts started (${middle.started
        .map((r) => `${r.vmName as string}:${r.state as string}`)
        .join(', ')})`,
    );
    await lab.restartServer();
    const failover = await until(
      'the failover to finish after the restart',
      async () => {
        const found = ((await ok('GET', '/ha/failovers')).items as ApiAnswer[]).find(
          (f) => f.id === middle.failover.id,
        );
        return found?.state === 'done' ? found : undefined;
      },
      120_000,
      250,
    ).catch(async (error: unknown) => {
      const state = JSON.stringify({
        failovers: await api('GET', '/ha/failovers'),
        ha: await api('GET', '/ha'),
      });
      throw new Error(`${(error as Error).message}: ${state}\n${lab.server.output().slice(-6000)}`);
    });
    assert.deepEqual(
      (failover.restarts as ApiAnswer[]).map((r) => r.state),
      ['running', 'running', 'running', 'running', 'running'],
    );
    // Exactly once each: one QEMU per VM across every host, none on A (powered off).
    const counts = await qemuCounts();
    for (const uuid of uuids) assert.equal(counts.get(uuid), 1, `VM ${uuid} runs once`);
    for (const [index, vmId] of vmIds.entries()) {
      const vm = await ok('GET', `/vms/${vmId}`);
      assert.equal(vm.facts['power.state'], 'running', `vm-${index}`);
      assert.notEqual(vm.computed['location.hostName'], 'k-a');
      const listed = (await ok('GET', `/vms?filter=name=vm-${index}`)).items as ApiAnswer[];
      assert.equal(listed.length, 1, `vm-${index} listed once`);
    }
  });
});
