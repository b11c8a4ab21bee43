/**
 * High availability of libvirt hosts against real peers: three libvirt daemons, each a host of its
 * own (its own mount namespace and host UUID, src/testing/libvirtd.ts), a storage pool `shared` on
 * each over one directory all of them see, and a tiny TCG guest whose disk is a volume there.
 * Host A's machine is behind a BMC — Zenith's Redfish service simulator, a simulator of our own —
 * linked to A by its SMBIOS UUID (the simulated machine carries A's host UUID), whose power-off
 * kills everything A runs: its daemons and its QEMUs. HA is enabled by a global policy.
 *
 * A crashes (its daemons and QEMUs killed at once): its RPC connection goes silent, Zenith
 * declares it failed, fences it through the BMC and defines and starts the domain on another
 * daemon, with its id and UUID; its location history says failover. Then that host, which has no
 * BMC, crashes too: nothing restarts (a libvirt host has no agent to fence itself), and the
 * failover says why; once it boots again, the failover ends and the VM is where it was. The local
 * QEMU host is listed as not watched, with the reason.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  ok,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { consoleTicks } from '../../src/testing/guest-console.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { startLibvirtd, type LibvirtdDaemon } from '../../src/testing/libvirtd.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../src/testing/redfish-simulator.js';
import { until } from '../../src/testing/wait.js';

const run = promisify(execFile);
const names = ['lv-a', 'lv-b', 'lv-c'];

/** The domains a daemon has defined (running or not), by name. */
async function domainsOf(daemon: LibvirtdDaemon): Promise<string[]> {
  const { stdout } = await run('virsh', [
    '-c',
    `qemu:///system?socket=${daemon.socketPath}`,
    'list',
    '--all',
    '--name',
  ]);
  return stdout.split('\n').filter((line) => line.trim() !== '');
}

describe('high availability of libvirt hosts: a crashed host’s domains run on another daemon', () => {
  const daemons: Record<string, LibvirtdDaemon> = {};
  let s: TestServer;
  let admin: string;
  let sim: RedfishSimulator;
  const baseDir = mkdtempSync(join(tmpdir(), 'zenith-ha-libvirt-'));
  let image: { kernel: string; initrd: string };
  let vmId: string;
  let localConnection: string;
  let unfenced: { hostName: string; failoverId: string } | undefined;

  const get = async (path: string) => ok(await s.request('GET', path, { token: admin }));
  const hostStatus = async (name: string | undefined) =>
    ((await get('/ha')).hosts as ApiAnswer[]).find((h) => h.name === name);

  before(async () => {
    image = await ensureGuestImage();
    mkdirSync(join(baseDir, 'local'));
    for (const name of names) {
      const daemon = await startLibvirtd({ qemuConf: 'user = "root"\ngroup = "root"' });
      daemons[name] = daemon;
      // The same directory as pool `shared` on every host: what one creates there, all see.
      const virsh = (...args: string[]) =>
        run('virsh', ['-c', `qemu:///system?socket=${daemon.socketPath}`, ...args]);
      await virsh('pool-define-as', 'shared', 'dir', '--target', baseDir);
      await virsh('pool-start', 'shared');
    }
    s = await startTestServer({ ha: { graceMs: 1000, tickMs: 250 } });
    admin = await s.login();
    for (const name of names)
      ok(
        await s.request('POST', '/connections', {
          token: admin,
          body: {
            name,
            type: 'libvirt',
            settings: {
              uri: `qemu:///system?socket=${daemons[name]!.socketPath}`,
              hostName: name,
              accelerator: 'tcg',
              storagePool: 'shared',
            },
          },
        }),
        201,
      );
    // The control plane's own host, as `zenith serve` connects it on a first start.
    localConnection = ok(
      await s.request('POST', '/connections', {
        token: admin,
        body: {
          name: 'local',
          type: 'qemu',
          settings: { storageRoots: [join(baseDir, 'local'), dirname(image.kernel)] },
        },
      }),
      201,
    ).id as string;
    // A's machine behind the BMC: the BMC reads A's host UUID as its SMBIOS UUID.
    sim = await startRedfishSimulator({
      machines: 1,
      hooks: { powerOff: () => daemons['lv-a']!.crash() },
    });
    sim.machine('System1').uuid = (await get('/hosts/lv-a')).facts['host.uuid'] as string;
    ok(
      await s.request('POST', '/connections', {
        token: admin,
        body: {
          name: 'bmc-a',
          type: 'redfish',
          settings: {
            url: sim.url,
            username: sim.username,
            thumbprint: sim.thumbprint,
            pollSeconds: 1,
          },
          secret: sim.password,
        },
      }),
      201,
    );
    await until('lv-a linked to its machine', async () =>
      typeof (await get('/hosts/lv-a')).computed['machine.id'] === 'string' ? true : undefined,
    );
  });
  after(async () => {
    try {
      await sim?.close();
      await s?.close();
    } finally {
      for (const daemon of Object.values(daemons)) await daemon.stop();
      rmSync(baseDir, { recursive: true, force: true });
    }
  });

  const failoverOf = (hostName: string, state: string) =>
    until(
      `the failover of ${hostName} to be ${state}`,
      async () => {
        const items = (await get('/ha/failovers')).items as ApiAnswer[];
        const latest = items.find((f) => f.hostName === hostName);
        return latest?.state === state ? latest : undefined;
      },
      90_000,
      200,
    ).catch(async (error: unknown) => {
      const seen = JSON.stringify({ ha: await get('/ha'), failovers: await get('/ha/failovers') });
      throw new Error(`${(error as Error).message}: ${seen}`);
    });

  test('host A crashes: it is fenced through its BMC and its domain is defined and started on another daemon, the same VM', async (t) => {
    const created = await s.waitForTask(
      admin,
      ok(
        await s.request('POST', '/vms', {
          token: admin,
          body: {
            name: 'web',
            hostId: 'lv-a',
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
          settings: { ha: { enabled: true, failureDetectionSeconds: 3 } },
        },
      }),
      201,
    );
    await until(
      'web protected (described)',
      async () => ((await get(`/ha/vms/${vmId}`)).state === 'protected' ? true : undefined),
      30_000,
      250,
    );
    const a = await hostStatus('lv-a');
    assert.deepEqual([a?.state, a?.fencing], ['healthy', 'bmc']);
    const b = await hostStatus('lv-b');
    assert.deepEqual([b?.state, b?.fencing], ['healthy', 'none']);
    assert.match(String(b?.reason), /no BMC/);
    const localHost = ((await get('/hosts')).items as ApiAnswer[]).find(
      (h) => h.connectionId === localConnection,
    );
    const local = await hostStatus(localHost?.name);
    assert.equal(local?.state, 'unprotected');
    assert.match(String(local?.reason), /control plane runs on this host/);
    const before = await get(`/vms/${vmId}`);
    assert.equal((await consoleTicks(s, admin, vmId, 1)).length, 1, 'the guest runs on A');

    // The crash: A's daemons and its QEMU die at once; the BMC still reads the machine on.
    const crashedAt = Date.now();
    await daemons['lv-a']!.crash();
    const failover = await failoverOf('lv-a', 'done');
    assert.equal(failover.fenceMethod, 'bmc');
    assert.equal(sim.machine('System1').power, 'Off', 'fenced: the BMC powered it off');
    const [restart] = failover.restarts as ApiAnswer[];
    assert.deepEqual([restart?.vmName, restart?.state], ['web', 'running']);
    const to = restart!.toHostName as string;
    assert.ok(['lv-b', 'lv-c'].includes(to), to);
    assert.deepEqual(await domainsOf(daemons[to]!), ['web'], `the domain is defined on ${to}`);

    const vm = await get(`/vms/${vmId}`);
    assert.equal(vm.id, vmId, 'it keeps its id');
    assert.equal(vm.computed['location.hostName'], to);
    assert.equal(vm.facts['power.state'], 'running');
    assert.equal(vm.facts['vm.uuid'], before.facts['vm.uuid']);
    assert.deepEqual(
      vm.facts['disk.sources'],
      before.facts['disk.sources'].map((source: string) =>
        join(baseDir, source.split('/').at(-1)!),
      ),
    );
    assert.equal(vm.facts['vm.createdBy'], 'zenith');
    const history = (await get(`/vms/${vmId}/location-history`)).items as ApiAnswer[];
    // The stay on the new host may begin with a moment libvirt reports as paused/starting-up: its
    // first row is the one the failover opened.
    const onTarget = history.findIndex((row) => row.hostName !== to);
    assert.ok(onTarget > 0, JSON.stringify(history));
    assert.equal(history[onTarget - 1]!.reason, 'failover', JSON.stringify(history));
    assert.equal(history[0]!.powerState, 'running');
    const then = history[onTarget];
    assert.equal(then!.hostName, 'lv-a');
    assert.equal(then!.to, failover.failedAt, 'the interval on A ends when A failed');
    assert.equal((await get('/vms?filter=name=web')).items.length, 1, 'one VM, not two');
    assert.equal((await consoleTicks(s, admin, vmId, 2)).length, 2, 'it boots again');
    t.diagnostic(
      `detection ${failover.detectedAt - crashedAt} ms after the crash; running ${
        restart!.runningAt - crashedAt
      } ms after`,
    );
  });

  test('a libvirt host without a BMC crashes: nothing restarts, and the failover says it cannot be fenced', async () => {
    const hostName = (await get(`/vms/${vmId}`)).computed['location.hostName'] as string;
    const other = names.find((name) => name !== 'lv-a' && name !== hostName)!;
    await until('its new host healthy again in HA’s eyes', async () =>
      (await hostStatus(hostName))?.state === 'healthy' ? true : undefined,
    );
    await daemons[hostName]!.crash();
    const failover = await failoverOf(hostName, 'fencing');
    assert.equal(failover.fencedAt, null);
    assert.match(String(failover.error), /cannot be fenced: it has no BMC/);
    assert.deepEqual(failover.restarts, [], 'nothing was even tried');
    const events = (await get('/events?limit=500')).items as ApiAnswer[];
    assert.ok(
      events.some((e) => e.type === 'ha.fenceFailed' && e.data?.name === hostName),
      events.map((e) => e.type).join(' '),
    );
    assert.equal((await hostStatus(hostName))?.state, 'failed');
    const vm = await get(`/vms/${vmId}`);
    assert.equal(vm.computed['location.hostName'], hostName, 'it stays where it was');
    assert.deepEqual(await domainsOf(daemons[other]!), [], `nothing was defined on ${other}`);
    unfenced = { hostName, failoverId: failover.id as string };
  });

  test('that host boots again: its failover ends with nothing restarted, and the VM is there, stopped by the crash', async () => {
    const { hostName, failoverId } = unfenced!;
    await daemons[hostName]!.boot();
    const ended = await until(
      'the failover to end',
      async () => {
        const failover = await get(`/ha/failovers/${failoverId}`);
        return failover.state === 'failed' ? failover : undefined;
      },
      60_000,
      250,
    );
    assert.match(String(ended.error), /answered again before it could be fenced/);
    assert.deepEqual(ended.restarts, []);
    assert.equal((await hostStatus(hostName))?.state, 'healthy');
    const vm = await until('the VM reported by its host again', async () => {
      const found = await get(`/vms/${vmId}`);
      return found.facts['power.state'] === 'stopped' ? found : undefined;
    });
    assert.equal(vm.computed['location.hostName'], hostName);
    assert.equal((await get('/vms?filter=name=web')).items.length, 1, 'one VM, not two');
  });
});
