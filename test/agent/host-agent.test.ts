import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { newKeyAndRequest } from '../../src/agent/agent-credentials.js';
import { processAlive } from '../../src/core/process.js';
import { spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import { consoleTicks } from '../../src/testing/guest-console.js';
import { until } from '../../src/testing/wait.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';

let outputOfAgent = () => '';
const lastOutput = () => `\nagent output:\n${outputOfAgent().slice(-3000)}`;

const alive = processAlive;

describe('zenith agent: enrollment, a real VM through the agent, and an agent restart', () => {
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const stateDir = mkdtempSync(join(tmpdir(), 'zenith-agent-'));
  let agent: AgentProcess | undefined;
  outputOfAgent = () => agent?.output() ?? '';
  const startAgent = (extra: string[] = []) => {
    agent = spawnAgent({
      serverUrl: s.baseUrl,
      stateDir,
      storageRoots: [dirname(image.kernel)],
      hostName: 'agent-host-1',
      extra,
    });
  };
  const killAgent = async () => agent?.kill();
  const connection = async () =>
    (
      (await s.request('GET', '/connections', { token })).body.items as Array<{
        name: string;
        type: string;
        state: string;
        id: string;
      }>
    ).find((c) => c.type === 'agent');

  before(async () => {
    image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
  });
  after(async () => {
    for (const vm of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? []) {
      if (typeof vm.facts['qemu.pid'] === 'number' && alive(vm.facts['qemu.pid']))
        process.kill(vm.facts['qemu.pid'], 'SIGKILL');
    }
    try {
      await killAgent();
    } finally {
      await s.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test('an agent enrolls with a one-time token and its host appears, connected', async () => {
    const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
      .body.token;
    startAgent(['--token', enrollment]);
    const conn = await until(
      () => `the agent connection${lastOutput()}`,
      async () => {
        const c = await connection();
        return c?.state === 'connected' ? c : undefined;
      },
    );
    assert.equal(conn.name, 'agent-agent-host-1');
    assert.equal(
      (statSync(join(stateDir, 'credentials.json')).mode & 0o777).toString(8),
      '600',
      'credentials are readable by root only',
    );
    const stored = JSON.parse(readFileSync(join(stateDir, 'credentials.json'), 'utf8'));
    assert.match(stored.certificate, /BEGIN CERTIFICATE/);
    assert.match(stored.privateKey, /BEGIN PRIVATE KEY/, 'the key was made on the host');
    assert.equal(stored.token, undefined, 'no bearer credentials');
    const hosts = (await s.request('GET', '/hosts', { token })).body.items;
    assert.deepEqual(
      hosts.map((h: any) => [h.name, h.facts['hypervisor.type']]),
      [['agent-host-1', 'qemu']],
    );
    const agents = (await s.request('GET', '/agents', { token })).body.items;
    assert.equal(agents[0].state, 'connected');
    assert.ok(agents[0].facts['qemu.version'], 'the heartbeat carries host facts');
    const reuse = await s.request('POST', '/agents/enroll', {
      body: {
        enrollmentToken: enrollment,
        hostname: 'other',
        csr: (await newKeyAndRequest('other')).csr,
      },
    });
    assert.equal(reuse.body.error.code, 'ZEN_TOKEN_EXPIRED');
  });

  test('a VM created and started through the agent keeps running while the agent restarts', async (t) => {
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    const create = await s.request('POST', '/vms', {
      token,
      body: {
        name: 'via-agent',
        hostId: host.id,
        cpus: 1,
        memoryBytes: 128 * 1048576,
        diskBytes: 0,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      },
    });
    assert.equal(create.status, 202, JSON.stringify(create.body));
    const waitTask = (id: string) => s.waitForTask(token, id);
    const created = await waitTask(create.body.id);
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const vmId = created.result.vmId;
    const started = await waitTask(
      (await s.request('POST', `/vms/${vmId}/start`, { token })).body.id,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    const vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.equal(vm.facts['power.state'], 'running');
    const pid = vm.facts['qemu.pid'] as number;

    // The serial console of an agent's VM, relayed through the agent's channel and the control plane.
    assert.equal((await consoleTicks(s, token, vmId, 1)).length, 1);

    // Per-VM counters arrive with the agent's heartbeats; a running guest's CPU time grows.
    const metricsOf = async () =>
      (await s.request('GET', `/vms/${vmId}/metrics`, { token })).body.metrics ?? undefined;
    const first = await until('metrics in a heartbeat', metricsOf, 20_000);
    assert.equal(first.memoryConfiguredBytes, 128 * 1048576);
    assert.ok(first.memoryUsedBytes > 0 && first.cpuTimeMs > 0, JSON.stringify(first));
    assert.equal(first.netRxBytes, null, 'user-mode networking keeps no counters');
    const later = await until(
      'a later heartbeat',
      async () => {
        const next = await metricsOf();
        return next && next.sampledAt > first.sampledAt ? next : undefined;
      },
      20_000,
    );
    assert.ok(later.cpuTimeMs > first.cpuTimeMs, `${first.cpuTimeMs} → ${later.cpuTimeMs} ms`);

    await killAgent();
    await until(
      () => `the connection to notice the agent is gone${lastOutput()}`,
      async () => ((await connection())?.state === 'disconnected' ? true : undefined),
      10_000,
    );
    assert.ok(alive(pid), 'the VM runs on while its agent is down');
    const refused = await s.request('POST', `/vms/${vmId}/suspend`, { token });
    assert.equal(refused.body.error.code, 'ZEN_CONNECTION_DISCONNECTED');

    const restartedAt = Date.now();
    startAgent();
    await until(
      () => `the agent to reconnect${lastOutput()}`,
      async () => ((await connection())?.state === 'connected' ? true : undefined),
      20_000,
    );
    const reconnectMs = Date.now() - restartedAt;
    const again = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.deepEqual(
      [again.facts['power.state'], again.facts['qemu.pid']],
      ['running', pid],
      'the same VM, re-attached, not restarted',
    );
    t.diagnostic(`the agent reconnected ${reconnectMs} ms after its restart`);

    const suspended = await waitTask(
      (await s.request('POST', `/vms/${vmId}/suspend`, { token })).body.id,
    );
    assert.equal(suspended.state, 'succeeded');
    const stopped = await waitTask(
      (await s.request('POST', `/vms/${vmId}/stop`, { token })).body.id,
    );
    assert.equal(stopped.state, 'succeeded');
    assert.equal(alive(pid), false);
    // Why it stopped crosses the channel as facts: turned off by Zenith, then a QEMU killed.
    const requested = await until('the stop cause of a stop through Zenith', async () => {
      const vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
      return vm.facts['power.stopCause'] === 'requested' ? vm : undefined;
    });
    assert.match(requested.facts['power.stoppedAt'], /^\d{4}-\d\d-\d\dT/);
    const restarted = await waitTask(
      (await s.request('POST', `/vms/${vmId}/start`, { token })).body.id,
    );
    assert.equal(restarted.state, 'succeeded');
    const running = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.equal(running.facts['power.stopCause'], null, 'no stop cause while it runs');
    process.kill(running.facts['qemu.pid'], 'SIGKILL');
    const crashed = await until('the stop cause of a killed QEMU', async () => {
      const vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
      return vm.facts['power.state'] === 'stopped' ? vm : undefined;
    });
    assert.equal(crashed.facts['power.stopCause'], 'crashed');
  });

  test('a frozen agent is cut off once silent past its limit: a call waiting on it fails at once, and thawed it reconnects', async () => {
    const [agentRow] = (await s.request('GET', '/agents', { token })).body.items;
    const link = s.plane.agentHub.link(agentRow.id)!;
    assert.ok(link.connected);
    const frozen = agent!.process;
    frozen.kill('SIGSTOP');
    try {
      // The call's own deadline is far off: only the cut-off ends it, with the channel's code.
      const failed = await link.call('discover', [], { timeoutMs: 300_000 }).then(
        () => assert.fail('a frozen agent answered'),
        (error: unknown) => error as { code?: string },
      );
      assert.equal(failed.code, 'ZEN_CONNECTION_DISCONNECTED');
      assert.equal(link.connected, false);
      assert.notEqual((await connection())?.state, 'connected');
    } finally {
      frozen.kill('SIGCONT');
    }
    // Thawed, it finds its socket closed and connects again; calls reach it on the new channel.
    await until(
      () => `the agent connected again${lastOutput()}`,
      async () => ((await connection())?.state === 'connected' ? true : undefined),
      60_000,
    );
    const fresh = s.plane.agentHub.link(agentRow.id)!;
    assert.notEqual(fresh, link);
    const snapshot = await fresh.call('discover', []);
    assert.equal(snapshot.objects.filter((o) => o.kind === 'host').length, 1);
  });

  test('a revoked agent is cut off at once and cannot come back', async () => {
    const agents = (await s.request('GET', '/agents', { token })).body.items;
    assert.equal((await connection())?.state, 'connected');
    const running = agent!;
    const exited = once(running.process, 'exit');
    await s.request('DELETE', `/agents/${agents[0].id}`, { token });
    // The channel is closed at once; the agent's reconnection is refused by serial, and it stops.
    const [code] = (await exited) as [number | null];
    assert.notEqual(code, 0);
    assert.match(running.output(), /ZEN_CREDENTIAL_REVOKED/);
    assert.notEqual((await connection())?.state, 'connected');
    const certificates = (await s.request('GET', `/agents/${agents[0].id}/certificates`, { token }))
      .body.items;
    assert.ok(certificates.every((c: { revokedAt: number | null }) => c.revokedAt !== null));

    startAgent();
    const [again] = (await once(agent!.process, 'exit')) as [number | null];
    assert.notEqual(again, 0, 'a restarted agent is refused too');
    assert.match(agent!.output(), /ZEN_CREDENTIAL_REVOKED/);
  });
});
