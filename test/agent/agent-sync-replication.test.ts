/**
 * Synchronous replication between agent hosts (two real `zenith agent` processes, real QEMU and
 * qemu-storage-daemon, one control plane): through the control plane's drivers of the two hosts,
 * a replica is started on host B and a guest on host A, writing its numbered pattern, is mirrored
 * into it. Every point taken on B holds every block the guest had reported written before it
 * (RPO 0); the replica outlives B's agent and is found again by its restarted agent; the oldest
 * point is folded into the base inside the running replica while the guest writes on; stopping the
 * mirror lets the guest write on, stopping the replica ends its daemon. A wrong key is refused
 * with its code across the channel, the key is in no agent's log, a replica started without an
 * address listens on its agent's migration address, and an agent speaking 1.8 (no mergePoint) has
 * no such facet and is told to upgrade.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isZenithError } from '../../src/core/errors.js';
import { processAlive } from '../../src/core/process.js';
import {
  requireFacet,
  type HypervisorDriver,
  type ReplicaPsk,
  type SyncReplicationFacet,
} from '../../src/hypervisors/driver.js';
import { backingChain, createImage } from '../../src/hypervisors/qemu/qemu-img.js';
import { newPskKey } from '../../src/hypervisors/qemu/tls-psk.js';
import { killAgents, spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { guestBytes, patternPrefix } from '../../src/testing/disk-image.js';
import { GuestConsole } from '../../src/testing/guest-console.js';
import { ensureGuestImage, guestAppend } from '../../src/testing/guest-image.js';
import { until } from '../../src/testing/wait.js';

const MiB = 1024 * 1024;
const DISK_BYTES = 64 * MiB;
/** Host B's migration address (not the default 127.0.0.1): a replica without an address listens there. */
const B_MIGRATION_ADDRESS = '127.0.0.2';
const coded = (code: string, message?: RegExp) => (error: unknown) =>
  isZenithError(error) && error.code === code && (!message || message.test(error.message));

describe('synchronous replication between agent hosts (real agents, real QEMU)', () => {
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const base = mkdtempSync(join(tmpdir(), 'zenith-agent-sync-'));
  const storage = (name: string) => join(base, name, 'storage');
  const agents = new Map<string, AgentProcess>();
  let guest: GuestConsole | undefined;

  const startAgent = async (hostName: string, env: Record<string, string> = {}) => {
    const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
      .body.token as string;
    agents.set(hostName, spawn(hostName, ['--token', enrollment], env));
    return connected(hostName);
  };
  const spawn = (hostName: string, extra: string[] = [], env: Record<string, string> = {}) =>
    spawnAgent({
      serverUrl: s.baseUrl,
      stateDir: join(base, hostName),
      storageRoots: [storage(hostName), dirname(image.kernel)],
      hostName,
      extra: [
        ...extra,
        ...(hostName === 'sync-b' ? ['--migration-address', B_MIGRATION_ADDRESS] : []),
      ],
      env,
    });
  const connectionOf = async (hostName: string) =>
    (
      (await s.request('GET', '/connections', { token })).body.items as Array<{
        id: string;
        name: string;
        state: string;
      }>
    ).find((c) => c.name === `agent-${hostName}`);
  const connected = (hostName: string) =>
    until(
      () => `${hostName} connected\n${agents.get(hostName)?.output().slice(-2000)}`,
      async () => {
        const connection = await connectionOf(hostName);
        return connection?.state === 'connected' ? connection : undefined;
      },
    );
  const driverOf = async (hostName: string): Promise<HypervisorDriver> =>
    s.plane.connections.driver((await connectionOf(hostName))!.id);
  const facetOn = async (hostName: string): Promise<SyncReplicationFacet> =>
    requireFacet(await driverOf(hostName), 'syncReplication', 'replicate synchronously');
  const runTask = async (method: string, path: string, body?: unknown): Promise<ApiAnswer> => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const done = await s.waitForTask(token, answer.body.id, 120_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    return done;
  };
  /** The most blocks the guest has said it wrote (it says so every 16 blocks). */
  const reported = () => Math.max(0, ...guest!.numbers('pattern'));
  const writtenMore = (more: number) => {
    const from = reported();
    return guest!.waitForNumber('pattern', (n) => n >= from + more, 0, 60_000);
  };

  before(async () => {
    image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
    for (const name of ['sync-a', 'sync-b']) mkdirSync(storage(name), { recursive: true });
    await startAgent('sync-a');
    await startAgent('sync-b');
  });
  after(async () => {
    guest?.close();
    for (const vm of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? [])
      if (typeof vm.facts['qemu.pid'] === 'number' && processAlive(vm.facts['qemu.pid']))
        process.kill(vm.facts['qemu.pid'], 'SIGKILL');
    // A replica daemon is detached from its agent: one a failed test left is stopped here.
    await (
      await facetOn('sync-b').catch(() => undefined)
    )
      ?.stopReplica(join(storage('sync-b'), 'replica-r1'))
      .catch(() => undefined);
    try {
      await killAgents([...agents.values()]);
    } finally {
      await s.close();
      rmSync(base, { recursive: true, force: true });
    }
  });

  test('a guest on host A mirrored through the facet into a replica on host B: every point holds every block the guest had reported written before it; the replica outlives its agent; stopping the mirror lets the guest write on', async () => {
    const hosts = (await s.request('GET', '/hosts', { token })).body.items as ApiAnswer[];
    const created = await runTask('POST', '/vms', {
      name: 'protected',
      hostId: hosts.find((h) => h.name === 'sync-a')!.id,
      cpus: 1,
      memoryBytes: 128 * MiB,
      diskBytes: DISK_BYTES,
      options: {
        kernel: image.kernel,
        initrd: image.initrd,
        cmdline: guestAppend({ pattern: true }),
      },
    });
    const vmId = created.result.vmId as string;
    await runTask('POST', `/vms/${vmId}/start`);
    const vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    guest = await GuestConsole.ofVm(s, token, vmId);
    await guest.waitForNumber('pattern', (n) => n >= 16, 0, 60_000);

    // Host B keeps the replica's chain: a ready point (as interval replication leaves one), then points.
    const chainDir = join(storage('sync-b'), 'chain');
    const readyPoint = join(chainDir, 'point-0.qcow2');
    mkdirSync(chainDir, { recursive: true });
    await createImage(readyPoint, { sizeBytes: DISK_BYTES });
    const directory = join(storage('sync-b'), 'replica-r1');
    const psk: ReplicaPsk = { identity: 'replication-r1', key: newPskKey() };

    const replicaEnd = await facetOn('sync-b');
    const replica = await replicaEnd.startReplica({
      directory,
      disks: [{ diskId: 'disk0', base: readyPoint }],
      psk,
      listen: { host: '127.0.0.1' },
    });
    const [disk] = replica.disks;
    assert.ok(disk, JSON.stringify(replica));
    assert.equal(disk.base, readyPoint);
    assert.equal(dirname(disk.overlay), chainDir, 'the live overlay beside its ready point');
    await assert.rejects(
      replicaEnd.startReplica({
        directory,
        disks: [{ diskId: 'disk0', base: readyPoint }],
        psk,
        listen: { host: '127.0.0.1' },
      }),
      coded('ZEN_CONFLICT'),
      'one replica per directory',
    );
    await assert.rejects(
      replicaEnd.startReplica({
        directory: join(base, 'elsewhere'),
        disks: [{ diskId: 'disk0', base: readyPoint }],
        psk,
        listen: { host: '127.0.0.1' },
      }),
      coded('ZEN_BAD_REQUEST', /outside the storage roots/),
      'the agent writes inside its storage roots only',
    );
    await assert.rejects(
      replicaEnd.startReplica({
        directory: join(storage('sync-b'), 'replica-two-disks'),
        disks: [
          { diskId: 'disk0', base: readyPoint },
          { diskId: 'disk1', base: readyPoint },
        ],
        psk,
        listen: { host: '127.0.0.1', port: disk.port + 1 },
      }),
      coded('ZEN_BAD_REQUEST', /a port of its own/),
    );
    await assert.rejects(
      replicaEnd.takePoint(directory, [{ diskId: 'disk1', path: join(chainDir, 'never.qcow2') }]),
      coded('ZEN_NOT_FOUND'),
    );

    const vmEnd = await facetOn('sync-a');
    const target = { host: disk.host, port: disk.port, exportName: disk.exportName, psk };
    await assert.rejects(
      vmEnd.startMirror(vm.externalId, 'disk0', { ...target, psk: { ...psk, key: newPskKey() } }),
      coded('ZEN_CONNECTION_AUTH_FAILED'),
      'another key is refused, with its code across the channel',
    );
    assert.deepEqual(await vmEnd.mirrorStatus(vm.externalId, 'disk0'), { state: 'none' });
    const started = await vmEnd.startMirror(vm.externalId, 'disk0', target);
    assert.equal(started.state, 'ready', JSON.stringify(started));
    assert.equal((await vmEnd.mirrorStatus(vm.externalId, 'disk0')).state, 'ready');

    const chain = [readyPoint];
    /** What each point held (by its file). */
    const held = new Map<string, number>();
    let previous = 0;
    const takeAndCheck = async (i: number) => {
      await writtenMore(16 * i);
      const before = reported();
      const [taken] = await (
        await facetOn('sync-b')
      ).takePoint(directory, [{ diskId: 'disk0', path: join(chainDir, `live-${i}.qcow2`) }]);
      assert.ok(taken);
      const blocks = patternPrefix(guestBytes(taken.point));
      assert.ok(
        blocks >= before,
        `point ${i} holds ${blocks} blocks; the guest had said ${before} were written before it`,
      );
      assert.ok(blocks >= previous, 'a later point never holds less');
      previous = blocks;
      held.set(taken.point, blocks);
      assert.deepEqual(await backingChain(taken.point), chain.toReversed());
      chain.push(taken.point);
      assert.equal(taken.overlay, join(chainDir, `live-${i}.qcow2`));
    };
    await takeAndCheck(1);
    await takeAndCheck(2);

    // B's agent dies and comes back: the replica ran on without it, and the mirror never noticed.
    await agents.get('sync-b')!.kill();
    await until('sync-b away', async () =>
      (await connectionOf('sync-b'))?.state === 'connected' ? undefined : true,
    );
    agents.set('sync-b', spawn('sync-b'));
    await connected('sync-b');
    const found = await (await facetOn('sync-b')).findReplica(directory);
    assert.equal(found?.disks[0]?.port, disk.port);
    assert.equal(found?.disks[0]?.overlay, join(chainDir, 'live-2.qcow2'));
    assert.equal((await vmEnd.mirrorStatus(vm.externalId, 'disk0')).state, 'ready');
    await takeAndCheck(3);

    // The oldest point folded into the base inside the running replica, the guest writing on.
    const [, oldest, second, third] = chain;
    assert.ok(oldest && second && third && oldest === disk.overlay, JSON.stringify(chain));
    const fold = { diskId: 'disk0', overlay: oldest, backing: readyPoint };
    await (await facetOn('sync-b')).mergePoint(directory, fold);
    assert.ok(!existsSync(oldest), 'the folded point is removed');
    chain.splice(1, 1);
    assert.deepEqual(await backingChain(second), [readyPoint]);
    assert.deepEqual(await backingChain(third), [second, readyPoint]);
    const inBase = patternPrefix(guestBytes(readyPoint));
    assert.ok(
      inBase >= held.get(oldest)!,
      `the base holds ${inBase} blocks after the fold; the point folded into it held ${held.get(oldest)}`,
    );
    assert.equal((await vmEnd.mirrorStatus(vm.externalId, 'disk0')).state, 'ready');
    await takeAndCheck(4);
    await (await facetOn('sync-b')).mergePoint(directory, fold); // done already: fine
    await assert.rejects(
      (await facetOn('sync-b')).mergePoint(directory, {
        diskId: 'disk0',
        overlay: third,
        backing: readyPoint,
      }),
      coded('ZEN_INVALID_STATE'),
      'the image under the point is another',
    );
    await assert.rejects(
      (await facetOn('sync-b')).mergePoint(join(storage('sync-b'), 'replica-none'), fold),
      coded('ZEN_NOT_FOUND'),
    );
    assert.ok(existsSync(third) && existsSync(second), 'a refused fold changes nothing');

    assert.equal((await vmEnd.stopMirror(vm.externalId, 'disk0')).state, 'ready');
    assert.deepEqual(await vmEnd.mirrorStatus(vm.externalId, 'disk0'), { state: 'none' });
    await writtenMore(16);
    await (await facetOn('sync-b')).stopReplica(directory);
    assert.equal(await (await facetOn('sync-b')).findReplica(directory), null);
    assert.equal(
      (await s.request('GET', `/vms/${vmId}`, { token })).body.facts['power.state'],
      'running',
    );
    for (const [name, agent] of agents)
      assert.ok(!agent.output().includes(psk.key), `${name}'s log holds the key`);
  });

  test("a replica of two disks serves each on a port of its own (by default on its agent's migration address) and takes a point of both; one that cannot start for a disk leaves none running", async () => {
    const replicaEnd = await facetOn('sync-b');
    const chainDir = join(storage('sync-b'), 'two-disks');
    mkdirSync(chainDir, { recursive: true });
    for (const diskId of ['disk0', 'disk1'])
      await createImage(join(chainDir, `${diskId}-point-0.qcow2`), { sizeBytes: 8 * MiB });
    const psk: ReplicaPsk = { identity: 'replication-r2', key: newPskKey() };
    const request = (bases: string[]) => ({
      directory: join(storage('sync-b'), 'replica-r2'),
      disks: ['disk0', 'disk1'].map((diskId, i) => ({ diskId, base: bases[i]! })),
      psk,
    });

    await assert.rejects(
      replicaEnd.startReplica(
        request([join(chainDir, 'disk0-point-0.qcow2'), join(chainDir, 'missing.qcow2')]),
      ),
      coded('ZEN_NOT_FOUND'),
    );
    assert.equal(
      await replicaEnd.findReplica(request([]).directory),
      null,
      "disk0's daemon was stopped when disk1's could not start",
    );

    const replica = await replicaEnd.startReplica(
      request(['disk0', 'disk1'].map((d) => join(chainDir, `${d}-point-0.qcow2`))),
    );
    assert.deepEqual(
      replica.disks.map((d) => [d.diskId, d.exportName]),
      [
        ['disk0', 'disk0'],
        ['disk1', 'disk1'],
      ],
    );
    assert.notEqual(replica.disks[0]!.port, replica.disks[1]!.port);
    assert.deepEqual(
      replica.disks.map((d) => d.host),
      [B_MIGRATION_ADDRESS, B_MIGRATION_ADDRESS],
      "no address given: the agent's migration address",
    );
    const points = await replicaEnd.takePoint(
      replica.directory,
      ['disk0', 'disk1'].map((diskId) => ({
        diskId,
        path: join(chainDir, `${diskId}-live-1.qcow2`),
      })),
    );
    for (const [i, point] of points.entries()) {
      assert.equal(point.point, replica.disks[i]!.overlay, 'the live overlay became the point');
      assert.deepEqual(await backingChain(point.point), [replica.disks[i]!.base]);
    }
    assert.deepEqual(
      (await replicaEnd.findReplica(replica.directory))?.disks.map((d) => d.overlay),
      points.map((p) => p.overlay),
    );
    await replicaEnd.stopReplica(replica.directory);
    assert.equal(await replicaEnd.findReplica(replica.directory), null);
  });

  test('an agent speaking 1.8 (no mergePoint) has no synchronous-replication facet: it is refused with ZEN_UNSUPPORTED saying to upgrade it, and a direct call too', async () => {
    const connection = await startAgent('sync-18', { ZENITH_AGENT_PROTOCOL: '1.8' });
    const older = s.plane.connections.driver(connection.id);
    assert.throws(
      () => requireFacet(older, 'syncReplication', 'replicate synchronously'),
      coded(
        'ZEN_UNSUPPORTED',
        /protocol 1\.8.*no 'syncReplication' facet \(since 1\.9\).*upgrade the agent/,
      ),
    );
    const agentId = ((await s.request('GET', '/agents', { token })).body.items as ApiAnswer[]).find(
      (a) => a.hostname === 'sync-18',
    )!.id as string;
    const point = join(storage('sync-18'), 'point.qcow2');
    await assert.rejects(
      s.plane.agentHub
        .link(agentId)!
        .call('mergeReplicaPoint', [
          storage('sync-18'),
          { diskId: 'disk0', overlay: point, backing: point },
        ]),
      coded('ZEN_UNSUPPORTED'),
    );
    assert.equal((await connectionOf('sync-18'))?.state, 'connected');
  });
});
