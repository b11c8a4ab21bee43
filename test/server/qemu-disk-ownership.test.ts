/**
 * A VM may use only its own disks (review finding 4), and what a new VM's
 * disks really take is what its quota reserves (finding 9). Two QEMU hosts
 * share one storage root, as hosts do on shared storage; an operator bound to
 * one host tries to reach a VM of the other through its disk file.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { ensureGuestImage } from '../../src/testing/guest-image.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('QEMU disks belong to their VM', () => {
  let s: TestServer;
  let admin: string;
  let mallory: string;
  let hostA: ApiAnswer;
  let hostB: ApiAnswer;
  let kernel: string;
  const shared = mkdtempSync(join(tmpdir(), 'zenith-shared-root-'));

  const ok = (answer: { status: number; body: ApiAnswer }, status = 200) => {
    assert.equal(answer.status, status, JSON.stringify(answer.body));
    return answer.body;
  };
  const create = (token: string, hostId: string, name: string, extra: Record<string, unknown>) =>
    s.request('POST', '/vms', {
      token,
      body: { name, hostId, cpus: 1, memoryBytes: 64 * MiB, diskBytes: 0, ...extra },
    });
  const created = async (answer: { status: number; body: ApiAnswer }) => {
    const task = await s.waitForTask(admin, ok(answer, 202).id);
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    return task.result.vmId as string;
  };
  const inUse = (answer: { status: number; body: ApiAnswer }) => {
    assert.equal(answer.status, 409, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'ZEN_DISK_IN_USE');
  };
  const vmNamed = async (name: string) =>
    ok(await s.request('GET', `/vms?filter=name=${name}`, { token: admin })).items[0];

  before(async () => {
    kernel = (await ensureGuestImage()).kernel;
    s = await startTestServer();
    admin = await s.login();
    for (const name of ['host-a', 'host-b'])
      ok(
        await s.request('POST', '/connections', {
          token: admin,
          body: {
            name,
            type: 'qemu',
            settings: {
              storageRoots: [shared, dirname(kernel)],
              accelerator: 'tcg',
              hostName: name,
            },
          },
        }),
        201,
      );
    hostA = ok(await s.request('GET', '/hosts/host-a', { token: admin }));
    hostB = ok(await s.request('GET', '/hosts/host-b', { token: admin }));
    ok(
      await s.request('POST', '/roles', {
        token: admin,
        body: {
          name: 'host-operator',
          permissions: ['inventory.read', 'vm.create', 'vm.power', 'vm.snapshot', 'vm.delete'],
        },
      }),
      201,
    );
    ok(
      await s.request('POST', '/users', {
        token: admin,
        body: { name: 'mallory', role: 'none', password: 'mallory-password-1' },
      }),
      201,
    );
    ok(
      await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'mallory', role: 'host-operator', scope: hostA.id },
      }),
      201,
    );
    mallory = await s.login('mallory', 'mallory-password-1');
  });
  after(async () => {
    await s.close();
    rmSync(shared, { recursive: true, force: true });
  });

  test("an operator of one host cannot attach, back onto or boot from another host's VM disk", async () => {
    const victim = await created(await create(admin, hostB.id, 'victim', { diskBytes: 8 * MiB }));
    const victimDisk = join(shared, 'victim', 'disk0.qcow2');
    assert.ok(existsSync(victimDisk));
    assert.notEqual((await s.request('GET', `/vms/${victim}`, { token: mallory })).status, 200);
    for (const options of [
      { disks: [{ file: victimDisk }] },
      { disks: [{ file: 'victim/disk0.qcow2' }] },
      { baseImage: victimDisk },
      { kernel: victimDisk },
      { kernel, initrd: victimDisk },
    ])
      inUse(await create(mallory, hostA.id, 'thief', { options }));
    assert.equal(await vmNamed('thief'), undefined, 'no VM was made');
    assert.equal(existsSync(join(shared, 'thief')), false, 'no disk was made');
    // The victim's own host cannot lend it either: only the victim uses it.
    inUse(await create(admin, hostB.id, 'thief-b', { options: { disks: [{ file: victimDisk }] } }));
  });

  test('an image that backs disks is read-only to every VM; an attached file is its VM’s until that VM is gone', async () => {
    const base = join(shared, 'images', 'base.qcow2');
    mkdirSync(dirname(base), { recursive: true });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, String(64 * MiB)]);
    const one = await created(
      await create(mallory, hostA.id, 'linked-1', { options: { baseImage: base } }),
    );
    await created(await create(admin, hostB.id, 'linked-2', { options: { baseImage: base } }));
    const linked = ok(await s.request('GET', `/vms/${one}`, { token: admin }));
    assert.equal(linked.facts['disk.totalBytes'], 64 * MiB, 'an overlay counts its base’s size');
    // Writing the base would change what both disks read.
    inUse(await create(admin, hostA.id, 'writer', { options: { disks: [{ file: base }] } }));

    const loose = join(shared, 'images', 'loose.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', loose, String(16 * MiB)]);
    // Two VMs asking for one free file at once: exactly one gets it.
    const answers = await Promise.all(
      ['attach-1', 'attach-2'].map((name) =>
        create(mallory, hostA.id, name, { options: { disks: [{ file: loose }], kernel } }),
      ),
    );
    const outcomes = await Promise.all(
      answers.map(async (answer) =>
        answer.status === 202
          ? (await s.waitForTask(admin, answer.body.id)).state === 'succeeded'
            ? 'made'
            : 'refused'
          : answer.body.error?.code === 'ZEN_DISK_IN_USE'
            ? 'refused'
            : JSON.stringify(answer.body),
      ),
    );
    assert.deepEqual(outcomes.sort(), ['made', 'refused']);
    const holder = (await vmNamed('attach-1')) ?? (await vmNamed('attach-2'));
    assert.equal(holder.facts['disk.totalBytes'], 16 * MiB);
    // Deleting the VM keeps the file (it was not made for it) and frees it.
    assert.equal(
      (
        await s.waitForTask(
          admin,
          ok(await s.request('DELETE', `/vms/${holder.id}`, { token: mallory }), 202).id,
        )
      ).state,
      'succeeded',
    );
    assert.ok(existsSync(loose));
    await created(
      await create(admin, hostB.id, 'attach-3', { options: { disks: [{ file: loose }], kernel } }),
    );
  });

  test('a quota reserves the disks the driver will make, not the request’s diskBytes (finding 9)', async () => {
    ok(await s.request('POST', '/groups', { token: admin, body: { name: 'small' } }), 201);
    ok(
      await s.request('POST', '/groups/small/members', {
        token: admin,
        body: { member: 'mallory' },
      }),
    );
    ok(await s.request('PUT', '/groups/small/quota', { token: admin, body: { diskBytes: GiB } }));
    const huge = await create(mallory, hostA.id, 'huge', {
      options: { disks: [{ file: 'huge/disk0.qcow2', sizeBytes: 10 * 1024 * GiB }] },
    });
    assert.equal(huge.status, 409, JSON.stringify(huge.body));
    assert.equal(huge.body.error.code, 'ZEN_QUOTA_EXCEEDED');
    assert.equal(huge.body.error.details.resource, 'diskBytes');
    assert.equal(huge.body.error.details.requested, 10 * 1024 * GiB);
    assert.equal(existsSync(join(shared, 'huge')), false, 'nothing was made');
    const fits = await created(
      await create(mallory, hostA.id, 'fits', {
        options: { disks: [{ file: 'fits/disk0.qcow2', sizeBytes: 512 * MiB }] },
      }),
    );
    const quota = ok(await s.request('GET', '/groups/small/quota', { token: mallory }));
    assert.equal(quota.used.diskBytes, 512 * MiB);
    assert.ok(fits);
  });
});
