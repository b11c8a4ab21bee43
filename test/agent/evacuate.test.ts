import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { processAlive } from '../../src/core/process.js';
import { killAgents, spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { until } from '../../src/testing/wait.js';

/** The directory of an agent's QEMU sockets (as the QEMU driver names it), which its QEMU command lines contain. */
function runDirOf(agentStateDir: string): string {
  return `/run/zenith/${createHash('sha256').update(join(agentStateDir, 'qemu')).digest('hex').slice(0, 12)}`;
}

describe('evacuating a host run by an agent (real QEMU)', () => {
  let s: TestServer;
  let token: string;
  const dirs = [
    mkdtempSync(join(tmpdir(), 'zenith-evac-a-')),
    mkdtempSync(join(tmpdir(), 'zenith-evac-b-')),
  ];
  const agents: AgentProcess[] = [];
  let image: { kernel: string; initrd: string };

  before(async () => {
    image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
    for (const [i, name] of ['evac-a', 'evac-b'].entries()) {
      const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
        .body.token;
      agents[i] = spawnAgent({
        serverUrl: s.baseUrl,
        stateDir: dirs[i]!,
        storageRoots: [join(dirs[i]!, 'storage'), dirname(image.kernel)],
        hostName: name,
        extra: ['--token', enrollment],
      });
    }
    await until(
      () =>
        `both agents${agents.map((a) => `\nagent output:\n${a.output().slice(-2000)}`).join('')}`,
      async () => {
        const connected = (
          (await s.request('GET', '/connections', { token })).body.items as Array<{
            state: string;
          }>
        ).filter((c) => c.state === 'connected');
        return connected.length === 2 ? true : undefined;
      },
    );
  });
  after(async () => {
    for (const vm of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? [])
      if (typeof vm.facts['qemu.pid'] === 'number' && processAlive(vm.facts['qemu.pid']))
        process.kill(vm.facts['qemu.pid'], 'SIGKILL');
    try {
      await killAgents(agents);
    } finally {
      for (const dir of dirs) spawnSync('pkill', ['-9', '-f', runDirOf(dir)]);
      await s.close();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });

  test('its running guest moves to the other agent by policy, with a predicted and an actual completion, and the host enters maintenance', async () => {
    const hosts = (await s.request('GET', '/hosts', { token })).body.items as Array<{
      id: string;
      name: string;
    }>;
    const a = hosts.find((h) => h.name === 'evac-a')!;
    const b = hosts.find((h) => h.name === 'evac-b')!;
    const created = await s.waitForTask(
      token,
      (
        await s.request('POST', '/vms', {
          token,
          body: {
            name: 'evacuee',
            hostId: a.id,
            cpus: 1,
            memoryBytes: 128 * 1024 * 1024,
            diskBytes: 0,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
          },
        })
      ).body.id,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const vmId = created.result.vmId as string;
    const started = await s.waitForTask(
      token,
      (await s.request('POST', `/vms/${vmId}/start`, { token })).body.id,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));

    const preview = await s.request('POST', '/placement/preview', { token, body: { vm: vmId } });
    assert.equal(preview.body.chosen.hostId, b.id, 'placement sees the other agent as a target');

    const evacuation = await s.request('POST', `/hosts/${a.id}/evacuate`, { token });
    assert.equal(evacuation.status, 202, JSON.stringify(evacuation.body));
    assert.equal(evacuation.body.params.moves, 1);
    assert.ok(evacuation.body.params.predictedCompletionMs > 0);
    const ended = await s.waitForTask(token, evacuation.body.id, 120_000);
    assert.equal(ended.state, 'succeeded', JSON.stringify(ended.error));
    assert.ok(ended.result.actualCompletionMs > 0);
    assert.equal(ended.result.predictedCompletionMs, evacuation.body.params.predictedCompletionMs);

    const vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.equal(vm.computed['location.hostId'], b.id);
    assert.equal(vm.facts['power.state'], 'running');
    assert.equal(
      (await s.request('GET', `/hosts/${a.id}`, { token })).body.computed['host.mode'],
      'maintenance',
    );
    const back = await s.request('POST', `/hosts/${a.id}/exit-maintenance`, { token });
    assert.equal(back.status, 200);
  });
});
