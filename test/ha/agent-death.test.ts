/**
 * High availability when only the agent process dies, on a host without a BMC: two physical hosts
 * (a `zenith agent` each in its own PID and network namespaces, src/testing/physical-hosts.ts)
 * sharing a storage directory, HA enabled by a global policy. The agent's QEMUs outlive it, so the
 * host's fencing sentinel — a process the agent starts and feeds — must kill them before the
 * control plane, which waits for the lease to be stale past the self-fencing deadline, runs them
 * elsewhere. Killed and started again in time, the agent feeds the same sentinel and nothing moves;
 * killed for good, the sentinel kills the guest's QEMU and it runs on the other host, one QEMU at
 * every moment, with its disk. When the agent comes back, it discards the VM that moved away.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import {
  readJson,
  sentinelPaths,
  type SentinelFencing,
} from '../../src/agent/ha-sentinel-files.js';
import {
  ok,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { consoleTicks } from '../../src/testing/guest-console.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { MachineProcess } from '../../src/testing/machine-process.js';
import {
  startPhysicalLab,
  type PhysicalHost,
  type PhysicalLab,
} from '../../src/testing/physical-hosts.js';
import { until } from '../../src/testing/wait.js';

const run = promisify(execFile);
// Time enough for a killed agent to be started again and feed its sentinel (about a second here,
// a few under load); each scenario below waits it out once or twice.
const selfFenceSeconds = 6;

describe('high availability: the agent process alone dies on a host without a BMC', () => {
  let lab: PhysicalLab;
  let s: TestServer;
  let admin: string;
  const machines: Record<string, MachineProcess> = {};
  const physical: Record<string, PhysicalHost> = {};
  const baseDir = mkdtempSync(join(tmpdir(), 'zenith-ha-agent-death-'));
  const shared = join(baseDir, 'shared');
  let image: { kernel: string; initrd: string };
  let vmId: string;
  let uuid: string;
  let disk: string;

  const get = async (path: string) => ok(await s.request('GET', path, { token: admin }));
  const connected = (name: string) =>
    until(
      `agent host ${name} connected`,
      async () => {
        const host = await s.request('GET', `/hosts/${name}`, { token: admin });
        if (host.status !== 200) return undefined;
        const connection = await get(`/connections/${host.body.connectionId}`);
        return connection.state === 'connected' ? host.body : undefined;
      },
      60_000,
      200,
    );
  /** The processes of the VM's QEMU on each host, by its UUID on their command lines. */
  const qemus = async () => {
    const found: Record<string, number[]> = {};
    for (const [name, host] of Object.entries(physical))
      found[name] = (await lab.processes(host))
        .filter((p) => p.command.includes('qemu-system') && p.command.includes(uuid))
        .map((p) => p.pid);
    return found;
  };
  const sentinels = async (name: string) =>
    (await lab.processes(physical[name]!)).filter((p) =>
      p.command.includes('zenith.js agent-sentinel'),
    );
  /** Its disk's marker (written before it first started), read beside the QEMU that holds it. */
  const diskMarked = async () => {
    const { stdout } = await run('qemu-io', [
      '-r',
      '-U',
      '-f',
      'qcow2',
      '-c',
      'read -P 0x5a 1M 64k',
      disk,
    ]);
    return /read 65536\/65536 bytes/.test(stdout) && !/verification failed/i.test(stdout);
  };

  before(async () => {
    image = await ensureGuestImage();
    mkdirSync(shared, { recursive: true });
    lab = await startPhysicalLab();
    s = await startTestServer({ listenHost: lab.gateway, ha: { graceMs: 1000, tickMs: 250 } });
    admin = await s.login();
    for (const name of ['ad-a', 'ad-b']) {
      const token = ok(
        await s.request('POST', '/agents/enrollment-tokens', { token: admin, body: {} }),
        201,
      ).token as string;
      const host = await lab.addHost({
        name,
        serverUrl: s.baseUrl,
        enrollmentToken: token,
        storageRoots: [shared, dirname(image.kernel)],
        baseDir,
      });
      machines[name] = new MachineProcess(host.machineCommand);
      physical[name] = host;
    }
    for (const machine of Object.values(machines)) await machine.start();
    for (const name of Object.keys(machines)) await connected(name);

    const created = await s.waitForTask(
      admin,
      ok(
        await s.request('POST', '/vms', {
          token: admin,
          body: {
            name: 'solo',
            hostId: 'ad-a',
            cpus: 1,
            memoryBytes: 96 * 2 ** 20,
            diskBytes: 8 * 2 ** 20,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
          },
        }),
        202,
      ).id,
      60_000,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    vmId = created.result.vmId as string;
    uuid = (await get(`/vms/${vmId}`)).facts['vm.uuid'] as string;
    // Its one disk, on the shared storage: marked before it runs (the guest never writes it).
    const disks = (readdirSync(shared, { recursive: true }) as string[]).filter((f) =>
      f.endsWith('.qcow2'),
    );
    assert.equal(disks.length, 1, disks.join(' '));
    disk = join(shared, disks[0]!);
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 1M 64k', disk]);
    const started = await s.waitForTask(
      admin,
      ok(await s.request('POST', `/vms/${vmId}/start`, { token: admin }), 202).id,
      60_000,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    ok(
      await s.request('POST', '/policies', {
        token: admin,
        body: {
          name: 'ha-everywhere',
          scope: { kind: 'global' },
          settings: {
            ha: {
              enabled: true,
              failureDetectionSeconds: 3,
              selfFenceSeconds,
              isolationResponse: 'leave-running',
            },
          },
        },
      }),
      201,
    );
    await until(
      'solo protected, and ad-a fenced by its lease',
      async () => {
        const vm = await get(`/ha/vms/${vmId}`);
        const host = ((await get('/ha')).hosts as ApiAnswer[]).find((h) => h.name === 'ad-a');
        return vm.state === 'protected' && host?.fencing === 'self-fence' && host.storage
          ? true
          : undefined;
      },
      30_000,
      250,
    );
  });
  after(async () => {
    try {
      for (const machine of Object.values(machines)) await machine.stop();
      await s?.close();
    } finally {
      await lab?.close();
      rmSync(baseDir, { recursive: true, force: true });
    }
  });

  test('the agent killed and started again within the deadline: it feeds the same sentinel, and the VM keeps running where it was', async () => {
    const sentinel = await until('the fencing sentinel of ad-a', async () => {
      const found = await sentinels('ad-a');
      return found.length === 1 ? found[0] : undefined;
    });
    const before = await qemus();
    assert.equal(before['ad-a']!.length, 1, 'the guest runs on ad-a');
    const killed = await lab.killAgent(physical['ad-a']!);
    assert.equal(killed.length, 1, 'one agent process');
    const killedAt = Date.now();
    await lab.startAgent(physical['ad-a']!);
    // Watch past the time the sentinel and the control plane would act on a dead agent.
    while (Date.now() - killedAt < (selfFenceSeconds + 4) * 1000) {
      const now = await qemus();
      assert.deepEqual(now['ad-a'], before['ad-a'], 'the same QEMU runs on ad-a');
      assert.deepEqual(now['ad-b'], [], 'nothing of it on ad-b');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await connected('ad-a');
    assert.deepEqual(
      (await sentinels('ad-a')).map((p) => p.pid),
      [sentinel.pid],
      'the restarted agent fed the sentinel it found: one, the same',
    );
    const vm = await get(`/vms/${vmId}`);
    assert.equal(vm.computed['location.hostName'], 'ad-a');
    assert.equal(vm.facts['power.state'], 'running');
    const history = (await get(`/vms/${vmId}/location-history`)).items as ApiAnswer[];
    assert.ok(
      history.every((h) => h.reason !== 'failover'),
      JSON.stringify(history.map((h) => h.reason)),
    );
    const restarts = ((await get('/ha/failovers')).items as ApiAnswer[]).flatMap(
      (f) => f.restarts as ApiAnswer[],
    );
    assert.deepEqual(restarts, [], 'nothing restarted');
    assert.equal(existsSync(sentinelPaths(physical['ad-a']!.stateDir).fenced), false);
  });

  test('the agent killed for good: its sentinel kills the QEMU before the control plane restarts the VM on ad-b — never two at once — and it runs there with its disk', async () => {
    await until('ad-a healthy', async () => {
      const host = ((await get('/ha')).hosts as ApiAnswer[]).find((h) => h.name === 'ad-a');
      return host?.state === 'healthy' && host.storage ? true : undefined;
    });
    assert.equal((await qemus())['ad-a']!.length, 1);
    await lab.killAgent(physical['ad-a']!);
    const samples: Array<Record<string, number[]>> = [];
    let failover: ApiAnswer;
    // Every moment until it runs on ad-b: at most one QEMU of it across the hosts.
    await until(
      'the VM running on ad-b after a failover',
      async () => {
        const now = await qemus();
        samples.push(now);
        const count = now['ad-a']!.length + now['ad-b']!.length;
        assert.ok(count <= 1, `two QEMUs of the VM at once: ${JSON.stringify(now)}`);
        const items = (await get('/ha/failovers')).items as ApiAnswer[];
        failover = items.find((f) => f.hostName === 'ad-a' && f.state === 'done');
        return failover && now['ad-b']!.length === 1 ? true : undefined;
      },
      90_000,
      100,
    );
    const goneAt = samples.findIndex((sample) => sample['ad-a']!.length === 0);
    const arrivedAt = samples.findIndex((sample) => sample['ad-b']!.length === 1);
    assert.ok(goneAt >= 0 && goneAt < arrivedAt, 'killed on ad-a before it started on ad-b');
    assert.equal(failover.fenceMethod, 'self-fence');
    const restart = (failover.restarts as ApiAnswer[]).find((r) => r.vmId === vmId)!;
    assert.deepEqual([restart.state, restart.toHostName], ['running', 'ad-b']);
    // The sentinel did it, and kept a record for the agent.
    const fencing = readJson<SentinelFencing>(sentinelPaths(physical['ad-a']!.stateDir).fenced);
    assert.deepEqual(
      fencing?.vms.map((v) => [v.uuid, v.release]),
      [[uuid, true]],
    );
    assert.match(
      readFileSync(sentinelPaths(physical['ad-a']!.stateDir).log, 'utf8'),
      /killed the VM/,
    );
    const vm = await get(`/vms/${vmId}`);
    assert.equal(vm.computed['location.hostName'], 'ad-b');
    assert.equal(vm.facts['power.state'], 'running');
    assert.equal((await consoleTicks(s, admin, vmId, 2)).length, 2, 'it boots on ad-b');
    assert.ok(await diskMarked(), 'its disk, with what was written on it, under it on ad-b');
  });

  test('the agent comes back: it takes what its sentinel did, discards the VM that moved away, and the VM runs on ad-b only', async () => {
    await lab.startAgent(physical['ad-a']!);
    await connected('ad-a');
    const definitions = join(physical['ad-a']!.stateDir, 'qemu', 'vms');
    await until(
      "solo's stale definition gone from ad-a",
      async () => (readdirSync(definitions).length === 0 ? true : undefined),
      30_000,
      250,
    );
    assert.equal(
      existsSync(sentinelPaths(physical['ad-a']!.stateDir).fenced),
      false,
      'the agent took the record',
    );
    const now = await qemus();
    assert.deepEqual([now['ad-a']!.length, now['ad-b']!.length], [0, 1]);
    const vm = await get(`/vms/${vmId}`);
    assert.equal(vm.computed['location.hostName'], 'ad-b');
    assert.equal(vm.facts['power.state'], 'running');
    assert.equal(((await get('/vms?filter=name=solo')).items as ApiAnswer[]).length, 1);
    assert.ok(await diskMarked(), 'its disk stays');
  });
});
