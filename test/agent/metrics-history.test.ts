import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { processAlive } from '../../src/core/process.js';
import { spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import {
  adminPassword,
  startTestServer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { cliRunner } from '../../src/testing/server-process.js';
import { until } from '../../src/testing/wait.js';

const MiB = 2 ** 20;

describe('metrics history of a real QEMU guest through a host agent', () => {
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const stateDir = mkdtempSync(join(tmpdir(), 'zenith-agent-metrics-'));
  let agent: AgentProcess | undefined;
  let pid: number | undefined;

  before(async () => {
    image = await ensureGuestImage();
    // Sample every second: each new heartbeat (every 5 s) becomes a sample.
    s = await startTestServer({ metrics: { sampleEveryMs: 1000 } });
    token = await s.login();
  });
  after(async () => {
    if (pid !== undefined && processAlive(pid)) process.kill(pid, 'SIGKILL');
    try {
      await agent?.kill();
    } finally {
      await s.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test('a running guest accumulates history with plausible values, through the API and the CLI', async (t) => {
    const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
      .body.token;
    agent = spawnAgent({
      serverUrl: s.baseUrl,
      stateDir,
      storageRoots: [dirname(image.kernel)],
      hostName: 'metrics-host',
      extra: ['--token', enrollment],
    });
    const host = await until(
      () => `the agent's host\n${agent!.output().slice(-2000)}`,
      async () => (await s.request('GET', '/hosts', { token })).body.items[0],
    );
    const create = await s.request('POST', '/vms', {
      token,
      body: {
        name: 'measured',
        hostId: host.id,
        cpus: 1,
        memoryBytes: 128 * MiB,
        diskBytes: 0,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      },
    });
    assert.equal(create.status, 202, JSON.stringify(create.body));
    const created = await s.waitForTask(token, create.body.id);
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const vmId = created.result.vmId as string;
    const started = await s.waitForTask(
      token,
      (await s.request('POST', `/vms/${vmId}/start`, { token })).body.id,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    pid = (await s.request('GET', `/vms/${vmId}`, { token })).body.facts['qemu.pid'];
    const since = Date.now() - 1000;

    const history = async () =>
      (
        await s.request(
          'GET',
          `/vms/${vmId}/metrics/history?from=${since}&to=${Date.now() + 5000}&step=5`,
          { token },
        )
      ).body;
    const measured = await until(
      'three steps with a measured rate',
      async () => {
        const view = await history();
        const rated = view.points.filter(
          (p: { cpuPercent: number | null }) => p.cpuPercent !== null,
        );
        return rated.length >= 3 ? { view, rated } : undefined;
      },
      90_000,
    );
    assert.equal(measured.view.vmId, vmId);
    assert.equal(measured.view.stepSeconds, 5);
    for (const point of measured.rated) {
      assert.equal(point.at % 5000, 0, 'points start at whole steps');
      // One vCPU under TCG, plus QEMU's own threads, on a 2-core machine.
      assert.ok(point.cpuPercent >= 0 && point.cpuPercent <= 200, `cpu ${point.cpuPercent}%`);
      assert.ok(
        point.memoryUsedBytes > 8 * MiB && point.memoryUsedBytes < 1024 * MiB,
        `memory ${point.memoryUsedBytes}`,
      );
      assert.equal(point.diskReadBytesPerSec, 0, 'the guest has no disk');
      assert.equal(point.diskWriteBytesPerSec, 0);
      assert.equal(point.netRxBytesPerSec, null, 'user-mode networking keeps no counters');
      assert.equal(point.netTxBytesPerSec, null);
    }
    assert.ok(
      measured.rated.some((p: { cpuPercent: number }) => p.cpuPercent > 0),
      'a booted guest uses some CPU',
    );
    t.diagnostic(
      `cpu % per 5 s step: ${measured.rated.map((p: { cpuPercent: number }) => p.cpuPercent.toFixed(1)).join(', ')}`,
    );

    const zenith = cliRunner(s.baseUrl);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
    const table = await zenith([
      'vms',
      'metrics',
      'measured',
      '--history',
      '--from',
      new Date(since).toISOString(),
      '--step',
      '5',
    ]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /\bCPU\b.*\bMEMORY\b/);
    assert.match(table.stdout, /\d+\.\d%/);
    const bad = await zenith(['vms', 'metrics', 'measured', '--history', '--step', '0']);
    assert.equal(bad.code === 0, false);
    assert.match(bad.stderr, /ZEN_BAD_REQUEST/);
  });
});
