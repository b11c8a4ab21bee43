/**
 * Live migration between two libvirt hosts: two real libvirtd daemons, each in
 * its own mount namespace (so each is a host of its own, with its own host
 * UUID), reached by Zenith over their unix sockets and by each other over TCP.
 * A running QEMU/TCG guest moves peer to peer and keeps its Zenith identity;
 * a migration cancelled half-way leaves it where it was.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../../src/testing/guest-image.js';
import { startLibvirtd, type LibvirtdDaemon } from '../../../src/testing/libvirtd.js';
import { until } from '../../../src/testing/wait.js';

describe('live migration between two libvirt hosts, through Zenith', () => {
  const daemons: LibvirtdDaemon[] = [];
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const hostIds: Record<string, string> = {};

  before(async () => {
    image = await ensureGuestImage();
    for (let i = 0; i < 2; i++)
      daemons.push(await startLibvirtd({ tcp: true, qemuConf: 'user = "root"\ngroup = "root"' }));
    s = await startTestServer();
    token = await s.login();
    for (const [i, name] of ['lv-a', 'lv-b'].entries()) {
      const daemon = daemons[i]!;
      const added = await s.request('POST', '/connections', {
        token,
        body: {
          name,
          type: 'libvirt',
          settings: {
            uri: `qemu:///system?socket=${daemon.socketPath}`,
            hostName: name,
            accelerator: 'tcg',
            // How the other daemon reaches this one, and where QEMU sends the memory.
            migrationUri: `qemu+tcp://127.0.0.1:${daemon.tcpPort}/system`,
            migrationDataUri: 'tcp://127.0.0.1',
          },
        },
      });
      assert.equal(added.body.state, 'connected', added.body.lastError);
    }
    for (const host of (await s.request('GET', '/hosts', { token })).body.items)
      hostIds[host.name] = host.id;
  });
  after(async () => {
    await s?.close();
    for (const daemon of daemons) await daemon.stop();
  });

  const vm = async (id: string): Promise<ApiAnswer> =>
    (await s.request('GET', `/vms/${id}`, { token })).body;
  const runTask = async (method: string, path: string, body?: unknown): Promise<ApiAnswer> => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return s.waitForTask(token, answer.body.id, 180_000);
  };
  const consoleTick = async (vmId: string): Promise<string> => {
    const issued = await s.request('POST', `/vms/${vmId}/console-tickets`, {
      token,
      body: { kind: 'serial' },
    });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    return new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = new WebSocket(`${s.baseUrl.replace('http', 'ws')}${issued.body.path}`);
      const timer = setTimeout(() => reject(new Error(`no tick on the console: ${text}`)), 60_000);
      socket.on('message', (data: Buffer) => {
        text += data.toString();
        const tick = /tick (\d+)\r?\n/.exec(text);
        if (tick) {
          clearTimeout(timer);
          socket.close();
          resolve(tick[1]!);
        }
      });
      socket.on('error', reject);
    });
  };

  test('a running guest moves from one host to the other and back, keeping its identity and history', async (t) => {
    const created = await runTask('POST', '/vms', {
      name: 'traveller',
      hostId: hostIds['lv-a'],
      cpus: 1,
      memoryBytes: 128 * 1048576,
      diskBytes: 0,
      options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
    });
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const vmId = created.result.vmId as string;
    assert.equal((await runTask('POST', `/vms/${vmId}/start`)).state, 'succeeded');
    const before = Number(await consoleTick(vmId));

    const moved = await runTask('POST', `/vms/${vmId}/migrate`, { targetHostId: hostIds['lv-b'] });
    assert.equal(moved.state, 'succeeded', JSON.stringify(moved.error));
    t.diagnostic(
      `a → b: job ${moved.result.totalTimeMs} ms, downtime ${moved.result.downtimeMs} ms, ${moved.result.transferredBytes} bytes`,
    );
    assert.equal(moved.result.hostId, hostIds['lv-b']);
    assert.equal(moved.result.powerState, 'running');
    let now = await vm(vmId);
    assert.equal(now.status, 'present');
    assert.equal(now.computed['location.hostName'], 'lv-b');
    assert.equal(now.facts['power.state'], 'running');
    const vms = (await s.request('GET', '/vms', { token })).body.items;
    assert.equal(vms.length, 1, 'one VM, not a copy per host');
    // The guest kept counting: the same memory, now on the other host.
    assert.ok(Number(await consoleTick(vmId)) > before, 'the guest did not start over');

    const back = await runTask('POST', `/vms/${vmId}/migrate`, {
      targetHostId: hostIds['lv-a'],
      maxDowntimeMs: 500,
    });
    assert.equal(back.state, 'succeeded', JSON.stringify(back.error));
    t.diagnostic(`b → a: job ${back.result.totalTimeMs} ms, downtime ${back.result.downtimeMs} ms`);
    now = await vm(vmId);
    assert.equal(now.computed['location.hostName'], 'lv-a');
    const history = (await s.request('GET', `/vms/${vmId}/location-history`, { token })).body.items
      .map((i: ApiAnswer) => `${i.hostName}:${i.powerState}`)
      .reverse();
    assert.deepEqual(history, ['lv-a:stopped', 'lv-a:running', 'lv-b:running', 'lv-a:running']);
  });

  test('a migration cancelled half-way leaves the guest running where it was', async () => {
    const vmId = (await s.request('GET', '/vms?filter=name=traveller', { token })).body.items[0].id;
    // Capped at 1 MiB/s, 128 MiB take minutes: the cancel comes while memory is being copied.
    const requested = await s.request('POST', `/vms/${vmId}/migrate`, {
      token,
      body: { targetHostId: hostIds['lv-b'], maxBandwidthBytesPerSecond: 1048576 },
    });
    assert.equal(requested.status, 202, JSON.stringify(requested.body));
    await until(
      'the migration to report progress',
      async () => {
        const task = (await s.request('GET', `/tasks/${requested.body.id}`, { token })).body;
        return task.progress > 0 ? task : undefined;
      },
      60_000,
      50,
    );
    const cancel = await s.request('POST', `/tasks/${requested.body.id}/cancel`, { token });
    assert.ok([200, 202].includes(cancel.status), JSON.stringify(cancel.body));
    const task = await s.waitForTask(token, requested.body.id, 120_000);
    assert.equal(task.state, 'cancelled', JSON.stringify(task));
    const now = await vm(vmId);
    assert.equal(now.computed['location.hostName'], 'lv-a');
    assert.equal(now.facts['power.state'], 'running');
    assert.ok(Number(await consoleTick(vmId)) >= 0);
    assert.equal((await runTask('POST', `/vms/${vmId}/stop`)).state, 'succeeded');
  });

  test('a target reached only through its local socket, with no migrationUri, is refused before anything is queued', async () => {
    const addLocal = () =>
      s.request('POST', '/connections', {
        token,
        body: {
          name: 'lv-b-local',
          type: 'libvirt',
          settings: {
            uri: `qemu:///system?socket=${daemons[1]!.socketPath}`,
            hostName: 'lv-b-local',
          },
        },
      });
    // The same daemon (same host UUID) cannot be connected twice: lv-b has to go first.
    const twice = await addLocal();
    assert.equal(twice.status, 409, JSON.stringify(twice.body));
    assert.equal(twice.body.error.code, 'ZEN_CONFLICT');
    assert.equal(twice.body.error.details.connection.name, 'lv-b');
    const removed = await s.request('DELETE', '/connections/lv-b', { token });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    const added = await addLocal();
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal(added.body.state, 'connected', added.body.lastError);
    const target = (await s.request('GET', '/hosts?filter=name=lv-b-local', { token })).body
      .items[0];
    const vmId = (await s.request('GET', '/vms?filter=name=traveller', { token })).body.items[0].id;
    const refused = await s.request('POST', `/vms/${vmId}/migrate`, {
      token,
      body: { targetHostId: target.id },
    });
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'ZEN_UNSUPPORTED');
    assert.equal(refused.body.error.details.setting, 'migrationUri');
    const tasks = (await s.request('GET', '/tasks?limit=100', { token })).body.items;
    assert.ok(
      !tasks.some((t: ApiAnswer) => t.params?.targetHostId === target.id),
      'nothing queued',
    );
  });
});
