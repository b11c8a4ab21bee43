/**
 * A real QEMU guest (TCG: KVM guests hang on these machines) run by a real
 * libvirtd under qemu:///system, entirely through Zenith: created with a qcow2
 * disk in a storage pool and a direct kernel boot of the tiny test guest,
 * started, watched on its serial console through the control plane, stopped
 * and deleted with the disk it owned.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../../src/testing/guest-image.js';
import { startLibvirtd, type LibvirtdDaemon } from '../../../src/testing/libvirtd.js';

describe('a QEMU (TCG) guest on a libvirt host, through Zenith', () => {
  let daemon: LibvirtdDaemon;
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const poolDir = mkdtempSync(join(tmpdir(), 'zenith-libvirt-pool-'));

  before(async () => {
    image = await ensureGuestImage();
    // QEMU runs as root here so that it reads the shared guest image where it lies.
    daemon = await startLibvirtd({ qemuConf: 'user = "root"\ngroup = "root"' });
    await daemon.createDirPool('images', poolDir);
    s = await startTestServer();
    token = await s.login();
  });
  after(async () => {
    await s?.close();
    await daemon?.stop();
    rmSync(poolDir, { recursive: true, force: true });
  });

  const runTask = async (method: string, path: string, body?: unknown): Promise<ApiAnswer> => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const task = await s.waitForTask(token, answer.body.id, 120_000);
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    return task;
  };

  test('the host shows libvirt, QEMU and its pool', async () => {
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'kvm-a',
        type: 'libvirt',
        settings: {
          uri: `qemu:///system?socket=${daemon.socketPath}`,
          accelerator: 'tcg',
          storagePool: 'images',
          hostName: 'kvm-a',
        },
      },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal(added.body.state, 'connected', added.body.lastError);
    assert.ok(added.body.capabilities.includes('vm.console'));
    assert.ok(added.body.capabilities.includes('vm.migrate'));
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    assert.equal(host.facts['hypervisor.type'], 'libvirt-qemu');
    assert.match(host.facts['hypervisor.version'], /^\d+\.\d+\.\d+$/);
    assert.match(host.facts['host.uuid'], /^[0-9a-f-]{36}$/);
    assert.ok(host.facts['libvirt.domainTypes'].includes('qemu'));
    const pool = (await s.request('GET', '/datastores', { token })).body.items[0];
    assert.equal(pool.name, 'images');
    assert.equal(pool.facts['storage.path'], poolDir);
    assert.ok(pool.facts['storage.freeBytes'] > 0);
  });

  test('create, start, console, snapshot, stop and delete a real guest', async (t) => {
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    const created = await runTask('POST', '/vms', {
      name: 'tiny-lv',
      hostId: host.id,
      cpus: 1,
      memoryBytes: 128 * 1048576,
      diskBytes: 64 * 1048576,
      options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
    });
    const vmId = created.result.vmId as string;
    let vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.equal(vm.facts['libvirt.domainType'], 'qemu', 'TCG, as the settings ask');
    assert.equal(vm.facts['boot.kind'], 'kernel');
    assert.deepEqual(vm.facts['disk.sources'], ['images/tiny-lv-disk0.qcow2']);
    assert.ok(existsSync(join(poolDir, 'tiny-lv-disk0.qcow2')), 'the disk is a volume of the pool');

    const startedAt = performance.now();
    await runTask('POST', `/vms/${vmId}/start`);
    t.diagnostic(`start task: ${Math.round(performance.now() - startedAt)} ms`);
    vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.equal(vm.facts['power.state'], 'running');
    assert.equal(vm.facts['power.reason'], 'running/booted');
    assert.equal(vm.computed['location.hostId'], host.id);

    // The serial console through the control plane: the guest counts on ttyS0.
    const issued = await s.request('POST', `/vms/${vmId}/console-tickets`, {
      token,
      body: { kind: 'serial' },
    });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const output = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = new WebSocket(`${s.baseUrl.replace('http', 'ws')}${issued.body.path}`);
      const timer = setTimeout(() => reject(new Error(`no tick on the console: ${text}`)), 60_000);
      socket.on('message', (data: Buffer) => {
        text += data.toString();
        if (/tick \d+/.test(text)) {
          clearTimeout(timer);
          socket.close();
          resolve(text);
        }
      });
      socket.on('error', reject);
    });
    assert.match(output, /tick \d+/);

    // An internal snapshot (the qcow2 disk holds the memory too), then back to it.
    const snapshotAt = performance.now();
    await runTask('POST', `/vms/${vmId}/snapshots`, { name: 'booted' });
    t.diagnostic(
      `snapshot of a running 128 MiB guest: ${Math.round(performance.now() - snapshotAt)} ms`,
    );
    const listed = (await s.request('GET', `/vms/${vmId}/snapshots`, { token })).body.items;
    assert.deepEqual(
      listed.map((x: ApiAnswer) => [x.name, x.powerState]),
      [['booted', 'running']],
    );
    await runTask('POST', `/vms/${vmId}/stop`);
    assert.equal(
      (await s.request('GET', `/vms/${vmId}`, { token })).body.facts['power.state'],
      'stopped',
    );
    await runTask('POST', `/vms/${vmId}/snapshots/booted/revert`);
    assert.equal(
      (await s.request('GET', `/vms/${vmId}`, { token })).body.facts['power.state'],
      'running',
      'a snapshot of a running guest comes back running',
    );
    await runTask('DELETE', `/vms/${vmId}/snapshots/booted`);
    await runTask('POST', `/vms/${vmId}/stop`);

    await runTask('DELETE', `/vms/${vmId}`);
    assert.equal((await s.request('GET', `/vms/${vmId}`, { token })).body.status, 'missing');
    assert.deepEqual(readdirSync(poolDir), [], 'the disk the VM owned went with it');
  });
});
