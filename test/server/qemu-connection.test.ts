import assert from 'node:assert/strict';
import { until } from '../../src/testing/wait.js';
import { consoleTicks } from '../../src/testing/guest-console.js';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  adminPassword,
  startTestServer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { startServerProcess } from '../../src/testing/server-process.js';

describe('a QEMU connection through the API: real VMs in the inventory', () => {
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const images = mkdtempSync(join(tmpdir(), 'zenith-qemu-images-'));
  before(async () => {
    image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
  });
  after(async () => {
    for (const vm of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? []) {
      if (vm.facts['power.state'] !== 'stopped')
        await s
          .waitForTask(token, (await s.request('POST', `/vms/${vm.id}/stop`, { token })).body.id)
          .catch(() => undefined);
    }
    await s.close();
    rmSync(images, { recursive: true, force: true });
  });

  test('the host appears with its facts, not simulated', async () => {
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'local',
        type: 'qemu',
        settings: { storageRoots: [images, dirname(image.kernel)], accelerator: 'tcg' },
      },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal(added.body.state, 'connected', added.body.lastError);
    const hosts = (await s.request('GET', '/hosts', { token })).body.items;
    assert.equal(hosts.length, 1);
    assert.equal(hosts[0].simulated, false);
    assert.equal(hosts[0].facts['hypervisor.type'], 'qemu');
    assert.ok(hosts[0].facts['qemu.version']);
  });

  test('a new disk is readable by its owner and group only, though its directory existed', async () => {
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    const create = await s.request('POST', '/vms', {
      token,
      body: {
        name: 'private-disk',
        hostId: host.id,
        cpus: 1,
        memoryBytes: 64 * 1048576,
        diskBytes: 16 * 1048576,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      },
    });
    assert.equal(create.status, 202, JSON.stringify(create.body));
    const task = await s.waitForTask(token, create.body.id);
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    // The disk images (the claims beside them, naming each disk's VM, are the owner's only).
    const disks = readdirSync(images, { recursive: true, encoding: 'utf8' })
      .filter((name) => !name.startsWith('.zenith-claims'))
      .map((name) => join(images, name))
      .filter((file) => statSync(file).isFile());
    assert.ok(disks.length > 0, 'the disk is under the storage root');
    for (const disk of disks) assert.equal((statSync(disk).mode & 0o777).toString(8), '640', disk);
    const removed = await s.request('DELETE', `/vms/${task.result.vmId}`, { token });
    assert.equal((await s.waitForTask(token, removed.body.id)).state, 'succeeded');
  });

  test("create, start, suspend, resume, reset a real guest; a QEMU killed behind Zenith's back shows stopped at once, with the reason", async (t) => {
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    const create = await s.request('POST', '/vms', {
      token,
      body: {
        name: 'tiny',
        hostId: host.id,
        cpus: 1,
        memoryBytes: 128 * 1048576,
        diskBytes: 0,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      },
    });
    assert.equal(create.status, 202, JSON.stringify(create.body));
    const created = await s.waitForTask(token, create.body.id);
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const vmId = created.result.vmId as string;
    const start = await s.waitForTask(
      token,
      (await s.request('POST', `/vms/${vmId}/start`, { token })).body.id,
    );
    assert.equal(start.state, 'succeeded', JSON.stringify(start.error));
    let vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.equal(vm.facts['power.state'], 'running');
    assert.equal(vm.computed['location.hostId'], host.id);
    assert.equal(
      (
        await s.waitForTask(
          token,
          (await s.request('POST', `/vms/${vmId}/suspend`, { token })).body.id,
        )
      ).state,
      'succeeded',
    );
    assert.equal(
      (await s.request('GET', `/vms/${vmId}`, { token })).body.facts['power.state'],
      'suspended',
    );
    assert.equal(
      (
        await s.waitForTask(
          token,
          (await s.request('POST', `/vms/${vmId}/resume`, { token })).body.id,
        )
      ).state,
      'succeeded',
    );

    // Reset is the reset button: the guest boots again, its counter starts over.
    const beforeReset = await until('the guest to count past 10', async () => {
      const ticks = await consoleTicks(s, token, vmId, 1);
      return ticks[0]! >= 10 ? ticks : undefined;
    });
    const reset = await s.waitForTask(
      token,
      (await s.request('POST', `/vms/${vmId}/reset`, { token })).body.id,
    );
    assert.equal(reset.state, 'succeeded', JSON.stringify(reset.error));
    assert.equal(reset.result.powerState, 'running');
    const afterReset = await consoleTicks(s, token, vmId, 1);
    assert.ok(
      afterReset[0]! < beforeReset[0]!,
      `the counter started over (${beforeReset[0]} → ${afterReset[0]})`,
    );

    // The serial console through the control plane: a single-use ticket, then a WebSocket.
    const issued = await s.request('POST', `/vms/${vmId}/console-tickets`, {
      token,
      body: { kind: 'serial' },
    });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const wsUrl = `${s.baseUrl.replace('http', 'ws')}${issued.body.path}`;
    const output = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = new WebSocket(wsUrl);
      const timer = setTimeout(() => reject(new Error(`no tick on the console: ${text}`)), 20_000);
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
    const reused = await new Promise<number>((resolve) => {
      const socket = new WebSocket(wsUrl);
      socket.on('close', (code) => resolve(code));
      socket.on('error', () => resolve(-1));
    });
    assert.equal(reused, 4401, 'a ticket opens one console, once');
    await s.request('POST', '/users', {
      token,
      body: { name: 'vic', role: 'viewer', password: 'viewer-password-1' },
    });
    const viewer = await s.login('vic', 'viewer-password-1');
    assert.equal(
      (await s.request('POST', `/vms/${vmId}/console-tickets`, { token: viewer, body: {} })).status,
      403,
    );

    process.kill(vm.facts['qemu.pid'], 'SIGKILL');
    const killedAt = Date.now();
    vm = await until('the inventory to show the VM stopped', async () => {
      const now = (await s.request('GET', `/vms/${vmId}`, { token })).body;
      return now.facts['power.state'] === 'stopped' ? now : undefined;
    });
    t.diagnostic(`the inventory showed the kill after ${Date.now() - killedAt} ms`);
    assert.match(vm.facts['power.reason'], /exited/);
    const history = (
      await s.request('GET', `/vms/${vmId}/location-history`, { token })
    ).body.items.map((i: any) => i.powerState);
    assert.deepEqual(history, ['stopped', 'running', 'suspended', 'running', 'stopped']);

    const remove = await s.waitForTask(
      token,
      (await s.request('DELETE', `/vms/${vmId}`, { token })).body.id,
    );
    assert.equal(remove.state, 'succeeded');
    assert.equal((await s.request('GET', `/vms/${vmId}`, { token })).body.status, 'missing');
  });

  test('a spec that reaches outside the storage roots is refused with a coded error before anything is queued', async () => {
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    const create = await s.request('POST', '/vms', {
      token,
      body: {
        name: 'escape',
        hostId: host.id,
        cpus: 1,
        memoryBytes: 128 * 1048576,
        diskBytes: 0,
        options: { kernel: '/etc/passwd' },
      },
    });
    assert.equal(create.status, 400, JSON.stringify(create.body));
    assert.equal(create.body.error.code, 'ZEN_BAD_REQUEST');
    const tasks = (await s.request('GET', '/tasks?limit=1000', { token })).body.items;
    assert.equal(
      tasks.some((task: { params: { name?: string } }) => task.params.name === 'escape'),
      false,
    );
  });

  test("on a real QEMU host a group's quota admits what fits, and a failed creation gives its reservation back", async () => {
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    await s.request('POST', '/groups', { token, body: { name: 'lab-team' } });
    await s.plane.identities.createUser({
      name: 'quinn',
      role: 'operator',
      password: 'quinn-password-long',
    });
    await s.request('POST', '/groups/lab-team/members', { token, body: { member: 'quinn' } });
    const quinn = await s.login('quinn', 'quinn-password-long');
    await s.request('PUT', '/groups/lab-team/quota', {
      token,
      body: { vms: 1, memoryBytes: 256 * 1048576 },
    });
    const spec = (name: string, disks: Array<{ file: string; sizeBytes: number }> = []) => ({
      name,
      hostId: host.id,
      cpus: 1,
      memoryBytes: 128 * 1048576,
      diskBytes: 0,
      options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND, disks },
    });
    const usage = async () =>
      (await s.request('GET', '/groups/lab-team/quota', { token: quinn })).body;
    const doomed = await s.request('POST', '/vms', {
      token: quinn,
      // Accepted, but qemu-img cannot make a qcow2 image of 1 EiB: the task fails.
      body: spec('doomed', [{ file: 'doomed/disk0.qcow2', sizeBytes: 2 ** 60 }]),
    });
    assert.equal(doomed.status, 202, JSON.stringify(doomed.body));
    assert.equal((await s.waitForTask(token, doomed.body.id)).state, 'failed');
    assert.deepEqual([(await usage()).used.vms, (await usage()).reserved.vms], [0, 0]);
    const fits = await s.request('POST', '/vms', {
      token: quinn,
      body: spec('in-quota'),
    });
    assert.equal(fits.status, 202, JSON.stringify(fits.body));
    const created = await s.waitForTask(token, fits.body.id);
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const after = await usage();
    assert.deepEqual(after.used, {
      vcpus: 1,
      memoryBytes: 128 * 1048576,
      diskBytes: after.used.diskBytes,
      vms: 1,
    });
    const over = await s.request('POST', '/vms', {
      token: quinn,
      body: spec('over-quota'),
    });
    assert.equal(over.status, 409, JSON.stringify(over.body));
    assert.deepEqual(
      [over.body.error.code, over.body.error.details.resource],
      ['ZEN_QUOTA_EXCEEDED', 'vms'],
    );
    const removal = await s.request('DELETE', `/vms/${created.result.vmId}`, { token: quinn });
    assert.equal((await s.waitForTask(token, removal.body.id)).state, 'succeeded');
    assert.equal((await usage()).used.vms, 0);
  });
});

test('zenith serve connects the machine it runs on as a QEMU host on the first start', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'zenith-local-'));
  const server = await startServerProcess({ dataDir, localHost: true });
  try {
    const login = (await (
      await fetch(`${server.url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password: adminPassword }),
      })
    ).json()) as any;
    const connections = (await (
      await fetch(`${server.url}/api/v1/connections`, {
        headers: { authorization: `Bearer ${login.token}` },
      })
    ).json()) as any;
    assert.deepEqual(
      connections.items.map((c: any) => [c.name, c.type, c.state]),
      [['local', 'qemu', 'connected']],
    );
  } finally {
    await server.kill();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("after a failed start, a viewer asks for the VM's metrics: an answer, and zenith serve lives on", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'zenith-failed-start-'));
  const image = await ensureGuestImage();
  const server = await startServerProcess({ dataDir, localHost: true });
  const call = async (method: string, path: string, token?: string, body?: unknown) => {
    const response = await fetch(`${server.url}/api/v1${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: response.status, body: (await response.json()) as any };
  };
  const login = async (username: string, password: string) =>
    (await call('POST', '/auth/login', undefined, { username, password })).body.token as string;
  const task = (token: string, id: string) =>
    until(`task ${id}`, async () => {
      const t = (await call('GET', `/tasks/${id}`, token)).body;
      return ['succeeded', 'failed', 'cancelled'].includes(t.state) ? t : undefined;
    });
  try {
    const admin = await login('admin', adminPassword);
    // A kernel inside the local host's storage root, removed before the start: QEMU makes its
    // QMP socket, then exits on the missing file.
    const images = join(dataDir, 'images');
    mkdirSync(images, { recursive: true });
    const kernel = join(images, 'vmlinuz');
    copyFileSync(image.kernel, kernel);
    const host = (await call('GET', '/hosts', admin)).body.items[0];
    const created = await task(
      admin,
      (
        await call('POST', '/vms', admin, {
          name: 'no-kernel',
          hostId: host.id,
          cpus: 1,
          memoryBytes: 128 * 1048576,
          diskBytes: 0,
          options: { kernel, cmdline: GUEST_KERNEL_APPEND },
        })
      ).body.id,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const vmId = created.result.vmId as string;
    rmSync(kernel);
    const started = await task(admin, (await call('POST', `/vms/${vmId}/start`, admin)).body.id);
    assert.equal(started.state, 'failed');
    assert.equal(started.error.code, 'ZEN_DRIVER_ERROR');
    assert.match(started.error.message, /kernel/);

    await call('POST', '/users', admin, {
      name: 'vera',
      role: 'viewer',
      password: 'viewer-password-1',
    });
    const viewer = await login('vera', 'viewer-password-1');
    const metrics = await call('GET', `/vms/${vmId}/metrics`, viewer);
    assert.deepEqual(metrics, { status: 200, body: { vmId, metrics: null } }, 'not running');
    const vm = (await call('GET', `/vms/${vmId}`, viewer)).body;
    assert.deepEqual([vm.facts['power.state'], vm.facts['qemu.pid']], ['stopped', null]);
    assert.equal((await fetch(`${server.url}/api/v1/health`)).status, 200);
    assert.equal(server.process.exitCode, null, 'zenith serve still runs');
  } finally {
    await server.kill();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
