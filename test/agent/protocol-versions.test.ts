/**
 * The agent channel's protocol version against the real server: real agent
 * processes (one of this build, one speaking 1.0 as an agent of the previous
 * minor version would, one of another major) and scripted peers. An older
 * minor works and is simply not asked what it lacks; another major is
 * refused with a code telling the operator what to upgrade. And, through the
 * agents' portable-VM facet, a VM of a host that died runs on another.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isZenithError } from '../../src/core/errors.js';
import { processAlive } from '../../src/core/process.js';
import {
  facetOf,
  requireFacet,
  type DiscoveredVm,
  type HypervisorDriver,
} from '../../src/hypervisors/driver.js';
import { killAgents, spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { consoleTicks } from '../../src/testing/guest-console.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { startScriptedAgent, type ScriptedAgent } from '../../src/testing/scripted-agent.js';
import { until } from '../../src/testing/wait.js';

const context = { signal: new AbortController().signal, progress: () => undefined };
const coded = (code: string, message?: RegExp) => (error: unknown) =>
  isZenithError(error) && error.code === code && (!message || message.test(error.message));

describe('agent channel protocol versions, against the real server', () => {
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const base = mkdtempSync(join(tmpdir(), 'zenith-protocol-'));
  const shared = join(base, 'shared');
  const agents: AgentProcess[] = [];
  const scripted: ScriptedAgent[] = [];

  const startAgent = async (hostName: string, env: Record<string, string> = {}) => {
    const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
      .body.token as string;
    const agent = spawnAgent({
      serverUrl: s.baseUrl,
      stateDir: join(base, hostName),
      storageRoots: [shared, dirname(image.kernel)],
      hostName,
      extra: ['--token', enrollment],
      env,
    });
    agents.push(agent);
    return agent;
  };
  const connectionOf = async (hostName: string) =>
    (
      (await s.request('GET', '/connections', { token })).body.items as Array<{
        id: string;
        name: string;
        state: string;
      }>
    ).find((c) => c.name === `agent-${hostName}`);
  const connected = (hostName: string, agent: AgentProcess) =>
    until(
      () => `${hostName} connected\n${agent.output().slice(-2000)}`,
      async () => {
        const connection = await connectionOf(hostName);
        return connection?.state === 'connected' ? connection : undefined;
      },
    );
  const driverOf = (connectionId: string): HypervisorDriver =>
    s.plane.connections.driver(connectionId);
  const runTask = async (method: string, path: string, body?: unknown): Promise<ApiAnswer> => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return s.waitForTask(token, answer.body.id, 120_000);
  };
  const hostNamed = async (name: string) =>
    ((await s.request('GET', '/hosts', { token })).body.items as ApiAnswer[]).find(
      (h) => h.name === name,
    )!;
  const newRunningVm = async (name: string, hostName: string, diskBytes = 0) => {
    const created = await runTask('POST', '/vms', {
      name,
      hostId: (await hostNamed(hostName)).id,
      cpus: 1,
      memoryBytes: 96 * 1048576,
      diskBytes,
      options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
    });
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const started = await runTask('POST', `/vms/${created.result.vmId}/start`);
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    return (await s.request('GET', `/vms/${created.result.vmId}`, { token })).body;
  };

  before(async () => {
    image = await ensureGuestImage();
    mkdirSync(shared, { recursive: true });
    s = await startTestServer();
    token = await s.login();
  });
  after(async () => {
    for (const vm of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? [])
      if (typeof vm.facts['qemu.pid'] === 'number' && processAlive(vm.facts['qemu.pid']))
        process.kill(vm.facts['qemu.pid'], 'SIGKILL');
    // Any QEMU these agents started and nobody lists any more (the one of a host that "died"):
    // first, since it holds its agent's output open, which killing the agent waits to close.
    spawnSync('pkill', ['-9', '-f', base]);
    try {
      for (const peer of scripted) await peer.close();
      await killAgents(agents);
    } finally {
      await s.close();
      rmSync(base, { recursive: true, force: true });
    }
  });

  test('an agent of this build and one speaking 1.0 both work; the older is not asked what 1.0 lacks', async () => {
    const current = await startAgent('host-a');
    const older = await startAgent('host-old', { ZENITH_AGENT_PROTOCOL: '1.0' });
    const currentConnection = await connected('host-a', current);
    const olderConnection = await connected('host-old', older);
    // The older agent does what 1.0 did: VMs are created and started on it, and they run.
    const vm = await newRunningVm('on-old', 'host-old');
    assert.ok((await consoleTicks(s, token, vm.id, 2)).length === 2);

    const currentId = (await s.request('GET', '/agents', { token })).body.items.find(
      (a: ApiAnswer) => a.hostname === 'host-a',
    ).id as string;
    assert.deepEqual(s.plane.agentHub.link(currentId)?.protocol, { major: 1, minor: 10 });
    assert.ok(
      facetOf(driverOf(currentConnection.id), 'portableVms'),
      'this build runs VMs from a description',
    );
    const olderDriver = driverOf(olderConnection.id);
    assert.ok(facetOf(driverOf(currentConnection.id), 'diskStreams'), 'this build backs VMs up');
    assert.equal(facetOf(olderDriver, 'portableVms'), undefined, 'a 1.0 agent has no such facet');
    assert.throws(
      () => requireFacet(olderDriver, 'portableVms', 'run VMs from a description'),
      coded('ZEN_UNSUPPORTED'),
    );
    assert.throws(
      () => requireFacet(olderDriver, 'diskStreams', 'back VMs up'),
      coded('ZEN_UNSUPPORTED', /no 'diskStreams' facet \(since 1\.5\)/),
    );
    // Asked anyway, the control plane answers for it, and the channel stays up.
    const agentId = (await s.request('GET', '/agents', { token })).body.items.find(
      (a: ApiAnswer) => a.hostname === 'host-old',
    ).id as string;
    const link = s.plane.agentHub.link(agentId)!;
    assert.deepEqual(link.protocol, { major: 1, minor: 0 });
    await assert.rejects(
      link.call('describeVm', [vm.externalId as string]),
      coded('ZEN_UNSUPPORTED', /1\.0.*upgrade the agent/),
    );
    assert.equal((await connectionOf('host-old'))?.state, 'connected');
    const stopped = await runTask('POST', `/vms/${vm.id}/stop`);
    assert.equal(stopped.state, 'succeeded', JSON.stringify(stopped.error));
  });

  test('through the agents’ portable-VM facet, the VM of a host that died runs on another with its identity', async () => {
    const second = await startAgent('host-b');
    const toConnection = await connected('host-b', second);
    const fromConnection = (await connectionOf('host-a'))!;
    const vm = await newRunningVm('roamer', 'host-a', 32 * 1048576);
    assert.equal((await consoleTicks(s, token, vm.id, 1)).length, 1, 'the guest runs on host-a');
    const description = await requireFacet(
      driverOf(fromConnection.id),
      'portableVms',
      'describe VMs',
    ).describeVm(vm.externalId as string);
    assert.equal(description.uuid, vm.facts['vm.uuid']);
    assert.equal(description.disks[0]?.location.path, join(shared, 'roamer', 'disk0.qcow2'));

    // host-a dies: its agent and the VM's QEMU are killed.
    await agents[0]!.kill();
    process.kill(vm.facts['qemu.pid'] as number, 'SIGKILL');
    await until('the QEMU to be gone', async () =>
      processAlive(vm.facts['qemu.pid'] as number) ? undefined : true,
    );
    // What a restart after a failure does: the move is held for the VM, then it runs elsewhere.
    const release = s.plane.inventory.handovers.hold(vm.id as string, toConnection.id);
    let arrived: DiscoveredVm;
    try {
      arrived = await requireFacet(driverOf(toConnection.id), 'portableVms', 'run VMs').runVm(
        description,
        { start: true },
        context,
      );
      await s.plane.inventory.applyChanges(toConnection.id, [arrived]);
    } finally {
      release();
    }
    assert.equal(arrived.facts['vm.uuid'], vm.facts['vm.uuid']);
    assert.deepEqual(arrived.facts['network.macs'], vm.facts['network.macs']);
    const now = (await s.request('GET', `/vms/${vm.id}`, { token })).body;
    assert.deepEqual(
      [now.id, now.computed['location.hostName'], now.facts['power.state']],
      [vm.id, 'host-b', 'running'],
      'the same VM, running on host-b',
    );
    // A fresh boot (its memory died with host-a), from the same disk, counting again.
    assert.equal((await consoleTicks(s, token, vm.id as string, 2)).length, 2);
    const roamers = (await s.request('GET', '/vms?filter=name=roamer', { token })).body.items;
    assert.equal(roamers.length, 1, 'listed once');
  });

  test('an agent speaking 1.5 backs VMs up but keeps no replica chains, starts no VM paused, waits on no guest agent and replicates nothing synchronously; this build does all four', async () => {
    const agent = await startAgent('host-15', { ZENITH_AGENT_PROTOCOL: '1.5' });
    const connection = await connected('host-15', agent);
    const older = driverOf(connection.id);
    const streams = facetOf(older, 'diskStreams');
    assert.ok(streams, 'a 1.5 agent backs VMs up');
    assert.equal(streams.mergeOverlay, undefined, 'no overlay merges before 1.6');
    assert.equal(facetOf(older, 'portableVms')?.startsPaused, false, 'no paused start before 1.7');
    assert.throws(
      () => requireFacet(older, 'guestAgent', 'wait on a guest agent'),
      coded('ZEN_UNSUPPORTED', /no 'guestAgent' facet \(since 1\.7\)/),
    );
    assert.throws(
      () => requireFacet(older, 'syncReplication', 'replicate synchronously'),
      coded('ZEN_UNSUPPORTED', /no 'syncReplication' facet \(since 1\.9\)/),
    );
    assert.throws(
      () => requireFacet(older, 'storageScan', 'scan storage for images'),
      coded('ZEN_UNSUPPORTED', /no 'storageScan' facet \(since 1\.10\)/),
    );
    // host-b: this build's agent (host-a's was killed by the test before).
    const current = driverOf((await connectionOf('host-b'))!.id);
    assert.ok(facetOf(current, 'diskStreams')?.mergeOverlay);
    assert.equal(facetOf(current, 'portableVms')?.startsPaused, true);
    assert.ok(facetOf(current, 'storageScan'));
    assert.ok(facetOf(current, 'guestAgent'));
    assert.ok(facetOf(current, 'syncReplication'));
  });

  test('an agent of another major is refused with ZEN_AGENT_INCOMPATIBLE and stops, saying to upgrade it', async () => {
    const ancient = await startAgent('host-ancient', { ZENITH_AGENT_PROTOCOL: '0.9' });
    // A deadline that does not outlive the test (a pending timer keeps the file's process alive).
    const [code] = (await once(ancient.process, 'exit', {
      signal: AbortSignal.timeout(60_000),
    }).catch(() => {
      throw new Error(ancient.output());
    })) as [number | null];
    assert.notEqual(code, 0);
    assert.match(ancient.output(), /ZEN_AGENT_INCOMPATIBLE/);
    assert.match(ancient.output(), /upgrade the agent/);
    assert.notEqual((await connectionOf('host-ancient'))?.state, 'connected');
  });

  test('scripted peers: no version is 1.0, another major is refused, an answer out of shape or a method it lacks is a coded error', async () => {
    const host = (name: string) => ({
      objects: [{ kind: 'host' as const, externalId: name, name, parent: null, facts: {} }],
    });
    const legacy = await startScriptedAgent({
      server: s.baseUrl,
      adminToken: token,
      hostname: 'legacy.lab',
      snapshot: host('legacy.lab'),
      protocol: null,
    });
    scripted.push(legacy);
    assert.equal(legacy.welcomedWith, '1.0');
    assert.deepEqual(s.plane.agentHub.link(legacy.agentId)?.protocol, { major: 1, minor: 0 });

    await assert.rejects(
      startScriptedAgent({
        server: s.baseUrl,
        adminToken: token,
        hostname: 'future.lab',
        snapshot: host('future.lab'),
        protocol: '2.0',
      }),
      /ZEN_AGENT_INCOMPATIBLE: .*upgrade the control plane/,
    );

    const modern = await startScriptedAgent({
      server: s.baseUrl,
      adminToken: token,
      hostname: 'modern.lab',
      snapshot: host('modern.lab'),
      protocol: '1.1',
      answers: { exportVm: () => ({ record: 'not a record' }) },
    });
    scripted.push(modern);
    assert.equal(modern.welcomedWith, '1.1');
    const connection = await until('modern.lab connected', async () => {
      const found = (
        (await s.request('GET', '/connections', { token })).body.items as ApiAnswer[]
      ).find((c) => c.name === 'agent-modern.lab');
      return found?.state === 'connected' ? found : undefined;
    });
    const driver = driverOf(connection.id as string);
    // It speaks 1.1, so it is asked; it does not know the call, and says so with the code.
    await assert.rejects(
      requireFacet(driver, 'portableVms', 'describe VMs').describeVm('x'),
      coded('ZEN_UNSUPPORTED', /scripted: no describeVm/),
    );
    // An answer that does not fit the call is not believed.
    await assert.rejects(
      requireFacet(driver, 'migration', 'migrate').exportVm('x'),
      coded('AGENT_CHANNEL_PROTOCOL_ERROR'),
    );
    assert.deepEqual(
      modern.calls.map((c) => c.method).filter((m) => m !== 'discover'),
      ['describeVm', 'exportVm'],
    );
    assert.equal(s.plane.agentHub.link(modern.agentId)?.connected, true, 'the channel stays up');
  });
});
