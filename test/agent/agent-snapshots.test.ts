import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { processAlive } from '../../src/core/process.js';
import { spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { GuestConsole } from '../../src/testing/guest-console.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { until } from '../../src/testing/wait.js';

describe('snapshots and clones of a VM on an agent host (real QEMU behind the agent)', () => {
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const stateDir = mkdtempSync(join(tmpdir(), 'zenith-agent-snap-'));
  const images = mkdtempSync(join(tmpdir(), 'zenith-agent-snap-images-'));
  let agent: AgentProcess | undefined;
  let vmId = '';

  const startAgent = (extra: string[] = []) => {
    agent = spawnAgent({
      serverUrl: s.baseUrl,
      stateDir,
      storageRoots: [images, dirname(image.kernel)],
      hostName: 'snap-host',
      extra,
    });
  };
  const stopAgent = async () => agent?.kill();
  const connected = () =>
    until(
      () => `the agent connection; agent output:\n${(agent?.output() ?? '').slice(-2000)}`,
      async () => {
        const connections = (await s.request('GET', '/connections', { token })).body.items;
        const agentConnection = connections.find((c: { type: string }) => c.type === 'agent');
        return agentConnection?.state === 'connected' ? agentConnection : undefined;
      },
    );
  const task = async (method: string, path: string, body?: unknown) => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return s.waitForTask(token, answer.body.id, 120_000);
  };
  const vm = async (id: string) => (await s.request('GET', `/vms/${id}`, { token })).body;
  const consoleOf = async (id: string) => {
    const ticket = await s.request('POST', `/vms/${id}/console-tickets`, {
      token,
      body: { kind: 'serial' },
    });
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body));
    return GuestConsole.webSocket(`${s.baseUrl.replace('http', 'ws')}${ticket.body.path}`);
  };

  before(async () => {
    image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
    const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
      .body.token;
    startAgent(['--token', enrollment]);
    await connected();
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    const created = await task('POST', '/vms', {
      name: 'agent-guest',
      hostId: host.id,
      cpus: 1,
      memoryBytes: 128 << 20,
      diskBytes: 64 << 20,
      options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
    });
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    vmId = created.result.vmId;
  });
  after(async () => {
    for (const each of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? [])
      if (typeof each.facts['qemu.pid'] === 'number' && processAlive(each.facts['qemu.pid']))
        process.kill(each.facts['qemu.pid'], 'SIGKILL');
    try {
      await stopAgent();
    } finally {
      await s.close();
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(images, { recursive: true, force: true });
    }
  });

  test('a running guest is snapshotted and keeps running; reverting takes its counter back to the snapshot', async () => {
    assert.equal((await task('POST', `/vms/${vmId}/start`)).state, 'succeeded');
    const console = await consoleOf(vmId);
    try {
      const beforeSnapshot = await console.waitForTick((t) => t >= 3);
      const taken = await task('POST', `/vms/${vmId}/snapshots`, { name: 'live' });
      assert.equal(taken.state, 'succeeded', JSON.stringify(taken.error));
      assert.deepEqual([taken.result.name, taken.result.powerState], ['live', 'running']);
      assert.equal((await vm(vmId)).facts['power.state'], 'running');
      const mark = console.ticks.length;
      const afterSnapshot = await console.waitForTick(() => true, mark);
      const beforeRevert = await console.waitForTick((t) => t >= afterSnapshot + 20, mark);

      const reverted = await task('POST', `/vms/${vmId}/snapshots/live/revert`);
      assert.equal(reverted.state, 'succeeded', JSON.stringify(reverted.error));
      assert.equal(reverted.result.powerState, 'running');
      const firstAfter = await console.waitForTick(
        (t) => t < beforeRevert,
        console.ticks.indexOf(beforeRevert) + 1,
      );
      assert.ok(
        firstAfter >= beforeSnapshot && firstAfter <= afterSnapshot + 2,
        `the guest counts on from the snapshot (ticks ${beforeSnapshot}–${afterSnapshot}), not from ${beforeRevert}: got ${firstAfter}`,
      );
    } finally {
      console.close();
    }
  });

  test('the snapshot list survives an agent restart, and a deleted snapshot is gone from it', async () => {
    await stopAgent();
    startAgent();
    await connected();
    const listed = (await s.request('GET', `/vms/${vmId}/snapshots`, { token })).body;
    assert.deepEqual(
      listed.items.map((x: { name: string; powerState: string }) => [x.name, x.powerState]),
      [['live', 'running']],
      JSON.stringify(listed),
    );
    const deleted = await task('DELETE', `/vms/${vmId}/snapshots/live`);
    assert.equal(deleted.state, 'succeeded', JSON.stringify(deleted.error));
    assert.deepEqual((await s.request('GET', `/vms/${vmId}/snapshots`, { token })).body.items, []);
    assert.equal((await vm(vmId)).facts['power.state'], 'running', 'deleting did not stop it');
  });

  test('a clone made through the agent reports its progress, boots, and has its own identity', async () => {
    const running = await s.request('POST', `/vms/${vmId}/clone`, {
      token,
      body: { name: 'agent-copy' },
    });
    assert.deepEqual([running.status, running.body.error?.code], [409, 'ZEN_INVALID_STATE']);
    assert.equal((await task('POST', `/vms/${vmId}/stop`)).state, 'succeeded');
    const cloned = await task('POST', `/vms/${vmId}/clone`, { name: 'agent-copy' });
    assert.equal(cloned.state, 'succeeded', JSON.stringify(cloned.error));
    const progress = (
      await s.request('GET', `/events?type=task.progress&objectId=${cloned.id}`, { token })
    ).body.items.map((e: { data: { message: string | null } }) => e.data.message);
    assert.ok(
      progress.some((m: string | null) => /copying disk/.test(m ?? '')),
      `the agent relayed the copy's progress: ${JSON.stringify(progress)}`,
    );
    const clone = await vm(cloned.result.vmId);
    assert.notEqual(clone.facts['vm.uuid'], (await vm(vmId)).facts['vm.uuid']);
    assert.equal((await task('POST', `/vms/${clone.id}/start`)).state, 'succeeded');
    const console = await consoleOf(clone.id);
    try {
      await console.waitForTick((t) => t >= 2);
    } finally {
      console.close();
    }
    const taken = await s.request('POST', `/vms/${vmId}/clone`, {
      token,
      body: { name: 'agent-copy' },
    });
    assert.deepEqual([taken.status, taken.body.error?.code], [409, 'ZEN_CONFLICT']);
  });
});
