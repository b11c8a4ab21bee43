import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { GuestConsole } from '../../src/testing/guest-console.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';

describe('snapshots and clones of real QEMU VMs through the API', () => {
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const images = mkdtempSync(join(tmpdir(), 'zenith-api-clone-'));
  let sourceId = '';

  const task = async (method: string, path: string, body?: unknown) => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return s.waitForTask(token, answer.body.id, 120_000);
  };
  const vm = async (id: string) => (await s.request('GET', `/vms/${id}`, { token })).body;
  const consoleOf = async (id: string) => {
    const ticket = await s.request('POST', `/vms/${id}/console-tickets`, {
      token,
      body: { kind: 'serial' },
    });
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body));
    return GuestConsole.webSocket(`${s.baseUrl.replace('http', 'ws')}${ticket.body.path}`);
  };

  before(async () => {
    image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'local',
        type: 'qemu',
        settings: { storageRoots: [images, dirname(image.kernel)], accelerator: 'tcg' },
      },
    });
    assert.equal(added.body.state, 'connected', added.body.lastError);
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    const created = await task('POST', '/vms', {
      name: 'golden',
      hostId: host.id,
      cpus: 1,
      memoryBytes: 128 << 20,
      diskBytes: 64 << 20,
      options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
    });
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    sourceId = created.result.vmId;
  });
  after(async () => {
    for (const each of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? [])
      if (each.facts['power.state'] !== 'stopped')
        await task('POST', `/vms/${each.id}/stop`).catch(() => undefined);
    await s.close();
    rmSync(images, { recursive: true, force: true });
  });

  test('a stopped VM is snapshotted, listed with its power state, and the snapshot deleted', async () => {
    const taken = await task('POST', `/vms/${sourceId}/snapshots`, { name: 'pristine' });
    assert.equal(taken.state, 'succeeded', JSON.stringify(taken.error));
    const listed = (await s.request('GET', `/vms/${sourceId}/snapshots`, { token })).body.items;
    assert.deepEqual(
      listed.map((x: { name: string; powerState: string }) => [x.name, x.powerState]),
      [['pristine', 'stopped']],
    );
    assert.equal((await vm(sourceId)).facts['snapshot.count'], 1);
    const reverted = await task('POST', `/vms/${sourceId}/snapshots/pristine/revert`);
    assert.equal(reverted.state, 'succeeded', JSON.stringify(reverted.error));
    assert.equal((await vm(sourceId)).facts['power.state'], 'stopped');
    const deleted = await task('DELETE', `/vms/${sourceId}/snapshots/${listed[0].id}`);
    assert.equal(deleted.state, 'succeeded', JSON.stringify(deleted.error));
    assert.deepEqual(
      (await s.request('GET', `/vms/${sourceId}/snapshots`, { token })).body.items,
      [],
    );

    const refusals: Array<[string, string, unknown, number, string]> = [
      ['POST', `/vms/${sourceId}/snapshots`, { name: 'no/slashes' }, 400, 'ZEN_BAD_REQUEST'],
      ['POST', `/vms/${sourceId}/snapshots/nope/revert`, undefined, 404, 'ZEN_NOT_FOUND'],
      ['DELETE', `/vms/${sourceId}/snapshots/nope`, undefined, 404, 'ZEN_NOT_FOUND'],
    ];
    for (const [method, path, body, status, code] of refusals) {
      const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
      assert.deepEqual([answer.status, answer.body.error?.code], [status, code], path);
    }
  });

  test('a full and a linked clone boot and print their own ticks, each with a new identity', async () => {
    const source = await vm(sourceId);
    const full = await task('POST', `/vms/${sourceId}/clone`, { name: 'golden-copy' });
    assert.equal(full.state, 'succeeded', JSON.stringify(full.error));
    const linked = await task('POST', `/vms/golden/clone`, { name: 'golden-link', linked: true });
    assert.equal(linked.state, 'succeeded', JSON.stringify(linked.error));
    assert.deepEqual(
      [linked.result.name, linked.result.sourceId, linked.result.linked],
      ['golden-link', sourceId, true],
    );
    const uuids = new Set([source.facts['vm.uuid']]);
    for (const cloneId of [full.result.vmId, linked.result.vmId]) {
      const clone = await vm(cloneId);
      assert.equal(clone.facts['power.state'], 'stopped');
      assert.equal(clone.computed['location.hostId'], source.computed['location.hostId']);
      uuids.add(clone.facts['vm.uuid']);
      const started = await task('POST', `/vms/${cloneId}/start`);
      assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
      const console = await consoleOf(cloneId);
      try {
        await console.waitForTick((t) => t >= 2);
      } finally {
        console.close();
      }
      assert.equal((await task('POST', `/vms/${cloneId}/stop`)).state, 'succeeded');
    }
    assert.equal(uuids.size, 3, 'three VMs, three UUIDs');
    assert.deepEqual((await vm(sourceId)).facts['clone.linkedClones'], ['golden-link']);
  });

  test('refusals: a taken name, a bad name or a running source get a coded 4xx and no task; the base of a linked clone is not deleted', async () => {
    const tasksBefore = (await s.request('GET', '/tasks?limit=1000', { token })).body.items.length;
    const filesBefore = readdirSync(images).sort();
    const refusals: Array<[unknown, number, string]> = [
      [{ name: 'golden-copy' }, 409, 'ZEN_CONFLICT'],
      [{ name: '../escape' }, 400, 'ZEN_BAD_REQUEST'],
      [{ name: 'x', extra: true }, 400, 'ZEN_BAD_REQUEST'],
    ];
    for (const [body, status, code] of refusals) {
      const answer = await s.request('POST', `/vms/${sourceId}/clone`, { token, body });
      assert.deepEqual(
        [answer.status, answer.body.error?.code],
        [status, code],
        JSON.stringify(body),
      );
    }
    const copyId = (await vm('golden-copy')).id;
    assert.equal((await task('POST', `/vms/${copyId}/start`)).state, 'succeeded');
    const running = await s.request('POST', `/vms/${copyId}/clone`, {
      token,
      body: { name: 'from-running' },
    });
    assert.deepEqual([running.status, running.body.error?.code], [409, 'ZEN_INVALID_STATE']);
    assert.equal((await task('POST', `/vms/${copyId}/stop`)).state, 'succeeded');
    await s.request('POST', '/users', {
      token,
      body: { name: 'vic', role: 'viewer', password: 'viewer-password-1' },
    });
    const viewer = await s.login('vic', 'viewer-password-1');
    const forbidden = await s.request('POST', `/vms/${sourceId}/clone`, {
      token: viewer,
      body: { name: 'by-viewer' },
    });
    assert.deepEqual([forbidden.status, forbidden.body.error?.code], [403, 'ZEN_FORBIDDEN']);
    assert.equal(
      (await s.request('GET', '/tasks?limit=1000', { token })).body.items.length,
      tasksBefore + 2,
      'only the start and stop were queued',
    );
    assert.deepEqual(readdirSync(images).sort(), filesBefore, 'no file was written');

    const removal = await task('DELETE', `/vms/${sourceId}`);
    assert.equal(removal.state, 'failed');
    assert.equal(removal.error.code, 'ZEN_CONFLICT');
    assert.match(removal.error.message, /golden-link/);
    assert.equal((await vm(sourceId)).status, 'present');
    assert.ok(existsSync(join(images, 'golden', 'disk0.qcow2')));
  });
});
