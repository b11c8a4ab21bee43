import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { until } from '../../src/testing/wait.js';

let s: TestServer;
let token: string;
let agent: AgentProcess | undefined;
const base = mkdtempSync(join(tmpdir(), 'zenith-agent-failed-start-'));

before(async () => {
  s = await startTestServer();
  token = await s.login();
});
after(async () => {
  try {
    await agent?.kill();
  } finally {
    await s.close();
    rmSync(base, { recursive: true, force: true });
  }
});

test('an agent whose VM failed to start keeps running through its next heartbeats, and reports the VM stopped', async () => {
  const image = await ensureGuestImage();
  const root = mkdtempSync(join(base, 'images-'));
  const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
    .body.token;
  agent = spawnAgent({
    serverUrl: s.baseUrl,
    stateDir: join(base, 'state'),
    storageRoots: [root],
    hostName: 'failing-host',
    extra: ['--token', enrollment],
  });
  const running = agent;
  const output = () => `\nagent output:\n${running.output().slice(-3000)}`;
  const host = await until(
    () => `the agent's host${output()}`,
    async () => (await s.request('GET', '/hosts', { token })).body.items[0],
  );
  // A kernel inside the agent's storage root, removed before the start: QEMU makes its QMP
  // socket, then exits on the missing file.
  const kernel = join(root, 'vmlinuz');
  copyFileSync(image.kernel, kernel);
  const created = await s.waitForTask(
    token,
    (
      await s.request('POST', '/vms', {
        token,
        body: {
          name: 'no-kernel',
          hostId: host.id,
          cpus: 1,
          memoryBytes: 128 * 1048576,
          diskBytes: 0,
          options: { kernel, cmdline: GUEST_KERNEL_APPEND },
        },
      })
    ).body.id,
  );
  assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
  const vmId = created.result.vmId as string;
  rmSync(kernel);
  const started = await s.waitForTask(
    token,
    (await s.request('POST', `/vms/${vmId}/start`, { token })).body.id,
  );
  assert.equal(started.state, 'failed');
  assert.equal(started.error.code, 'ZEN_DRIVER_ERROR');

  // Each heartbeat measures the host's VMs; the agent used to die at the first one after a failed start.
  const lastSeen = async () =>
    (await s.request('GET', '/agents', { token })).body.items[0].lastSeenAt as number;
  let seen = await lastSeen();
  for (const beat of ['first', 'second']) {
    seen = await until(
      () => `the ${beat} heartbeat after the failed start${output()}`,
      async () => {
        if (running.process.exitCode !== null || running.process.signalCode !== null)
          throw new Error(`the agent exited (${running.process.exitCode})${output()}`);
        const now = await lastSeen();
        return now > seen ? now : undefined;
      },
      30_000,
      100,
    );
  }
  const vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
  assert.deepEqual([vm.facts['power.state'], vm.facts['qemu.pid']], ['stopped', null]);
  assert.deepEqual((await s.request('GET', `/vms/${vmId}/metrics`, { token })).body, {
    vmId,
    metrics: null,
  });
});
