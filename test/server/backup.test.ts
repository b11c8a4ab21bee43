/**
 * Backup through the API, on two real QEMU hosts of one control plane: a repository registered in
 * the backup roots, a VM backed up in full, then only what changed (stopped, and running), the
 * catalogue, a restore onto the other host that boots and holds the disk exactly as it was at the
 * backup's point in time, verify finding a flipped byte, and the refusals.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { downloadBackupDisk } from '../../src/api/backups.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import {
  guestBytes,
  guestBytesHash as hashOf,
  patternPrefix,
} from '../../src/testing/disk-image.js';
import { GuestConsole } from '../../src/testing/guest-console.js';
import {
  ensureGuestImage,
  GUEST_KERNEL_APPEND,
  GUEST_READY_LINE,
  guestAppend,
} from '../../src/testing/guest-image.js';

const MiB = 1024 * 1024;

describe('backup and restore through the API (real QEMU, two hosts)', () => {
  let s: TestServer;
  let token: string;
  const base = mkdtempSync(join(tmpdir(), 'zenith-api-backup-'));
  const rootA = join(base, 'a');
  const rootB = join(base, 'b');
  let vmId = '';

  const task = async (method: string, path: string, body?: unknown) => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return s.waitForTask(token, answer.body.id, 120_000);
  };
  const succeeded = async (method: string, path: string, body?: unknown) => {
    const done = await task(method, path, body);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    return done.result;
  };
  const vm = async (id: string) => (await s.request('GET', `/vms/${id}`, { token })).body;
  /** The guest's serial console through the API, until it has counted two ticks: it runs. */
  const ticks = async (id: string) => {
    const console = await GuestConsole.ofVm(s, token, id);
    try {
      await console.waitForTick((t) => t >= 2);
    } finally {
      console.close();
    }
  };
  const write = (image: string, pattern: number, offset: number, length: number) =>
    execFileSync('qemu-io', [
      '-f',
      'qcow2',
      '-c',
      `write -P ${pattern} ${offset} ${length}`,
      image,
    ]);

  before(async () => {
    const image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
    for (const [name, root] of [
      ['bk-a', rootA],
      ['bk-b', rootB],
    ] as const) {
      const added = await s.request('POST', '/connections', {
        token,
        body: {
          name,
          type: 'qemu',
          settings: {
            storageRoots: [root, dirname(image.kernel)],
            accelerator: 'tcg',
            hostName: name,
          },
        },
      });
      assert.equal(added.body.state, 'connected', added.body.lastError);
    }
    const hostA = (await s.request('GET', '/hosts/bk-a', { token })).body;
    const created = await succeeded('POST', '/vms', {
      name: 'bk',
      hostId: hostA.id,
      cpus: 1,
      memoryBytes: 128 * MiB,
      diskBytes: 64 * MiB,
      options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
    });
    vmId = created.vmId;
  });
  after(async () => {
    for (const each of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? [])
      if (each.facts['power.state'] !== 'stopped')
        await task('POST', `/vms/${each.id}/stop`).catch(() => undefined);
    await s.close();
    rmSync(base, { recursive: true, force: true });
  });

  test('full, then incremental backups (stopped and running); the catalogue; a restore on the other host boots with the disk as it was', async () => {
    const disk = join(rootA, 'bk', 'disk0.qcow2');
    write(disk, 0x11, 0, 8 * MiB);
    write(disk, 0x22, 40 * MiB, 2 * MiB);

    const path = join(s.dataDir, 'backups', 'main');
    const added = await s.request('POST', '/backup-repositories', {
      token,
      body: { name: 'main', path },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal(added.body.key, null);
    assert.equal(added.body.repository.chunkSize, 4 * MiB);

    const capabilities = (await s.request('GET', `/vms/${vmId}/capabilities`, { token })).body;
    assert.ok(capabilities.capabilities.includes('vm.backup'));
    // Full: only the chunks with data are read (3 of 16); the two alike are stored once.
    const full = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(full.scope, 'full');
    assert.equal(full.readBytes, 12 * MiB);
    assert.deepEqual([full.newChunks, full.sharedChunks], [2, 1]);

    // 1 MiB changed while stopped: only that MiB is read; the rest of its chunk is the last backup's.
    write(disk, 0x33, 20 * MiB, MiB);
    const pointHash = hashOf(disk);
    const second = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(second.scope, 'incremental');
    assert.equal(second.readBytes, MiB);
    assert.deepEqual([second.newChunks, second.sharedChunks], [1, 3]);

    // Running: read through QEMU while the guest runs.
    await succeeded('POST', `/vms/${vmId}/start`);
    const third = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(third.scope, 'incremental');
    assert.ok(third.readBytes <= 4 * MiB, `read ${third.readBytes} bytes`);
    await succeeded('POST', `/vms/${vmId}/stop`);

    const catalogue = (await s.request('GET', '/backups?vm=bk', { token })).body.items;
    assert.deepEqual(
      catalogue.map((b: { id: string }) => b.id),
      [third.backupId, second.backupId, full.backupId],
      'newest first',
    );
    assert.deepEqual(
      catalogue.map((b: { parentId: string | null }) => b.parentId),
      [second.backupId, full.backupId, null],
    );
    assert.ok(
      catalogue.every((b: { state: string; vmId: string }) => b.state === 'ok' && b.vmId === vmId),
    );
    const repository = (await s.request('GET', '/backup-repositories/main', { token })).body;
    assert.equal(repository.backups, 3);
    assert.equal(repository.usage.chunks, 3 + third.newChunks);
    assert.ok(repository.usage.dedupRatio > 1, JSON.stringify(repository.usage));
    assert.ok(repository.usage.filesystem.freeBytes > 0);

    // Restored onto the other host: a new VM (new UUID and MACs), stopped, disk as at the point.
    const restored = await succeeded('POST', `/backups/${second.backupId}/restore`, {
      host: 'bk-b',
      name: 'bk-back',
    });
    const copy = await vm(restored.vmId);
    const source = await vm(vmId);
    assert.equal(copy.name, 'bk-back');
    assert.equal(copy.computed['location.hostName'], 'bk-b');
    assert.equal(copy.facts['power.state'], 'stopped');
    assert.notEqual(copy.facts['vm.uuid'], source.facts['vm.uuid']);
    const [restoredDir] = readdirSync(rootB).filter((d) => d.startsWith('bk-back-'));
    assert.equal(hashOf(join(rootB, restoredDir!, 'disk0.qcow2')), pointHash);
    await succeeded('POST', `/vms/${restored.vmId}/start`);
    await ticks(restored.vmId);
    await succeeded('POST', `/vms/${restored.vmId}/stop`);
  });

  test('a restore test boots the newest backup with no network on the other host, sees the guest come up, and removes it; a guest that never says so fails the test and is removed too', async (t) => {
    const [newest] = (await s.request('GET', `/backups?vm=${vmId}`, { token })).body.items;
    /** VMs present (a removed one stays in the inventory as missing, with its history). */
    const present = async () =>
      (await s.request('GET', '/vms?limit=100', { token })).body.items.filter(
        (v: { status: string }) => v.status === 'present',
      ).length;
    const vmsBefore = await present();
    const dirsBefore = readdirSync(rootB).sort();
    const passed = await succeeded('POST', `/backups/${newest.id}/test`, {
      host: 'bk-b',
      marker: GUEST_READY_LINE,
      timeoutSeconds: 120,
    });
    assert.equal(passed.booted, true);
    assert.equal(passed.backupId, newest.id);
    assert.match(passed.line, new RegExp(GUEST_READY_LINE));
    // Nothing of the test VM is left: not in the inventory, not on the host's storage.
    assert.equal(await present(), vmsBefore);
    assert.deepEqual(readdirSync(rootB).sort(), dirsBefore);

    // Long enough for the guest to write something under the load of the moment (its kernel at
    // least): twice what the test above took from restore to marker, and some; 15 s at most.
    const timeoutSeconds = Math.min(15, Math.ceil(2 * passed.bootSeconds) + 3);
    t.diagnostic(`came up in ${passed.bootSeconds} s; the failing one waits ${timeoutSeconds} s`);
    const failed = await task('POST', `/backups/${newest.id}/test`, {
      host: 'bk-b',
      marker: 'a line no guest writes',
      timeoutSeconds,
    });
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error.code, 'ZEN_BACKUP_RESTORE_TEST_FAILED');
    // The console's last output is in the report: the guest did run.
    assert.match(
      failed.error.message,
      new RegExp(`did not write .* in ${timeoutSeconds} s; its last output: ".+"`),
    );
    assert.equal(await present(), vmsBefore);
    assert.deepEqual(readdirSync(rootB).sort(), dirsBefore);

    const bad = await s.request('POST', `/backups/${newest.id}/test`, {
      token,
      body: { host: 'bk-b', marker: '(' },
    });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.error.details.field, 'marker');
  });

  test('a disk of a backup downloads as a raw or a qcow2 image equal to the disk at its point; audited; a viewer, an unknown disk and a damaged backup are refused', async () => {
    const [newest] = (await s.request('GET', `/backups?vm=${vmId}`, { token })).body.items;
    // The VM is stopped and its guest never writes its disk: the disk is as at the newest backup.
    const diskHash = hashOf(join(rootA, 'bk', 'disk0.qcow2'));
    const download = (id: string, diskId: string, as = token) =>
      fetch(`${s.baseUrl}/api/v1/backups/${id}/disks/${diskId}/download`, {
        method: 'POST',
        headers: { authorization: `Bearer ${as}` },
      });
    // Through the typed client, as a program of the operators' would take it.
    const answer = await s
      .client(token)
      .bytes(downloadBackupDisk, { params: { id: newest.id, diskId: 'disk0' } });
    assert.equal(answer.sizeBytes, 64 * MiB);
    assert.match(answer.fileName ?? '', /^bk-disk0-\S+\.raw$/);
    const hash = createHash('sha256');
    let received = 0;
    for await (const piece of answer.body) {
      hash.update(piece);
      received += piece.length;
    }
    assert.equal(received, 64 * MiB);
    assert.equal(hash.digest('hex'), diskHash);
    // As qcow2: only what holds data, an image qemu-img checks clean and reads as the disk.
    const qcow2 = await s.client(token).bytes(downloadBackupDisk, {
      params: { id: newest.id, diskId: 'disk0' },
      query: { format: 'qcow2' },
    });
    assert.match(qcow2.fileName ?? '', /^bk-disk0-\S+\.qcow2$/);
    const qcow2File = join(base, 'download.qcow2');
    const pieces: Buffer[] = [];
    for await (const piece of qcow2.body) pieces.push(Buffer.from(piece));
    writeFileSync(qcow2File, Buffer.concat(pieces));
    assert.equal(statSync(qcow2File).size, qcow2.sizeBytes);
    assert.ok(qcow2.sizeBytes! < 32 * MiB, `holes take no room: ${qcow2.sizeBytes} bytes`);
    execFileSync('qemu-img', ['check', '-q', qcow2File]);
    assert.equal(hashOf(qcow2File), diskHash);
    const plain = await download(newest.id, 'disk0');
    assert.equal(plain.headers.get('content-type'), 'application/octet-stream');
    await plain.body?.cancel();
    const audited = (await s.request('GET', '/audit?action=backup.download', { token })).body.items;
    assert.equal(audited[0]?.targetId, newest.id, JSON.stringify(audited[0]));

    const unknown = await download(newest.id, 'disk7');
    assert.deepEqual(
      [unknown.status, ((await unknown.json()) as { error: { code: string } }).error.code],
      [404, 'ZEN_NOT_FOUND'],
    );
    await s.request('POST', '/users', {
      token,
      body: { name: 'dora', role: 'viewer', password: 'viewer-password-2' },
    });
    const viewer = await s.login('dora', 'viewer-password-2');
    const forbidden = await download(newest.id, 'disk0', viewer);
    assert.deepEqual(
      [forbidden.status, ((await forbidden.json()) as { error: { code: string } }).error.code],
      [403, 'ZEN_FORBIDDEN'],
    );
  });

  test('a browser download: a single-use ticket for one disk, then a plain GET with no token; audited as its user; a used ticket, a logged-out token and a viewer are refused', async () => {
    const [newest] = (await s.request('GET', `/backups?vm=${vmId}`, { token })).body.items;
    const diskHash = hashOf(join(rootA, 'bk', 'disk0.qcow2'));
    const ticketFor = (as: string, format = 'qcow2') =>
      s.request('POST', `/backups/${newest.id}/disks/disk0/download-tickets`, {
        token: as,
        body: { format },
      });
    const issued = await ticketFor(token);
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    assert.match(issued.body.path, /^\/api\/v1\/downloads\/\S{16,}$/);
    assert.match(issued.body.fileName, /^bk-disk0-\S+\.qcow2$/);
    // No Authorization header: the ticket in the path is the credential.
    const answer = await fetch(`${s.baseUrl}${issued.body.path}`);
    assert.equal(answer.status, 200);
    assert.equal(
      answer.headers.get('content-disposition'),
      `attachment; filename="${issued.body.fileName}"`,
    );
    assert.equal(Number(answer.headers.get('content-length')), issued.body.sizeBytes);
    const file = join(base, 'ticket-download.qcow2');
    writeFileSync(file, Buffer.from(await answer.arrayBuffer()));
    execFileSync('qemu-img', ['check', '-q', file]);
    assert.equal(hashOf(file), diskHash, 'the disk as it was at the backup');
    const audited = (await s.request('GET', '/audit?action=backup.download', { token })).body.items;
    assert.deepEqual(
      [audited[0]?.targetId, audited[0]?.actorName, audited[0]?.params?.by],
      [newest.id, 'admin', 'ticket'],
      JSON.stringify(audited[0]),
    );
    const again = await fetch(`${s.baseUrl}${issued.body.path}`);
    assert.deepEqual(
      [again.status, ((await again.json()) as { error: { code: string } }).error.code],
      [401, 'ZEN_UNAUTHENTICATED'],
      'a ticket is used once',
    );
    // A ticket outlives no logout of the token it was asked for with.
    const other = await s.login();
    const orphan = await ticketFor(other, 'raw');
    assert.equal(orphan.status, 201);
    assert.equal((await s.request('POST', '/auth/logout', { token: other })).status, 204);
    const afterLogout = await fetch(`${s.baseUrl}${orphan.body.path}`);
    assert.equal(afterLogout.status, 401);
    await afterLogout.body?.cancel();
    // A viewer gets no ticket (the same refusal as for the download itself).
    const viewer = await s.login('dora', 'viewer-password-2');
    assert.equal((await ticketFor(viewer)).status, 403);
    const unknownDisk = await s.request(
      'POST',
      `/backups/${newest.id}/disks/disk7/download-tickets`,
      {
        token,
        body: {},
      },
    );
    assert.equal(
      unknownDisk.status,
      404,
      'a disk the backup lacks is told when the ticket is asked for',
    );
  });

  test('verify finds a flipped byte: the backups using the chunk are damaged and are not restored', async () => {
    // The chunk the stopped incremental wrote is used by it and the running one after it.
    const chunks = join(s.dataDir, 'backups', 'main', 'chunks');
    const files = readdirSync(chunks).flatMap((prefix) =>
      readdirSync(join(chunks, prefix)).map((name) => join(chunks, prefix, name)),
    );
    const victim = files[0]!;
    const bytes = readFileSync(victim);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(victim, bytes);
    const report = await succeeded('POST', '/backup-repositories/main/verify');
    assert.deepEqual(report.damagedChunks, [victim.split('/').pop()]);
    const damaged = (await s.request('GET', '/backups?vm=bk&state=damaged', { token })).body.items;
    assert.ok(damaged.length >= 1);
    const refused = await s.request('POST', `/backups/${damaged[0].id}/restore`, {
      token,
      body: { host: 'bk-b', name: 'from-damaged' },
    });
    assert.equal(
      refused.body.error?.code,
      'ZEN_BACKUP_CHUNK_DAMAGED',
      JSON.stringify(refused.body),
    );
    const notDownloaded = await s.request(
      'POST',
      `/backups/${damaged[0].id}/disks/disk0/download`,
      { token },
    );
    assert.deepEqual(
      [notDownloaded.status, notDownloaded.body.error?.code],
      [409, 'ZEN_BACKUP_CHUNK_DAMAGED'],
    );
  });

  test('refusals: a path outside the backup roots, a taken name, a viewer, an unknown backup', async () => {
    const refusals: Array<[string, string, unknown, number, string]> = [
      [
        'POST',
        '/backup-repositories',
        { name: 'out', path: join(base, 'elsewhere') },
        400,
        'ZEN_BAD_REQUEST',
      ],
      [
        'POST',
        '/backup-repositories',
        { name: 'main', path: join(s.dataDir, 'backups', 'x') },
        409,
        'ZEN_CONFLICT',
      ],
      ['POST', `/vms/${vmId}/backups`, { repository: 'nope' }, 404, 'ZEN_NOT_FOUND'],
      [
        'POST',
        '/backups/backup_01M96AAAAAAAAAAAAAAAAAAAAA/restore',
        { host: 'bk-b' },
        404,
        'ZEN_NOT_FOUND',
      ],
    ];
    // A file where the repository's directory would be: a coded refusal, not a 500.
    writeFileSync(join(s.dataDir, 'backups', 'a-file'), 'not a directory');
    refusals.push([
      'POST',
      '/backup-repositories',
      { name: 'filed', path: join(s.dataDir, 'backups', 'a-file') },
      409,
      'ZEN_BACKUP_REPOSITORY_INVALID',
    ]);
    for (const [method, path, body, status, code] of refusals) {
      const answer = await s.request(method, path, { token, body });
      assert.deepEqual(
        [answer.status, answer.body.error?.code],
        [status, code],
        JSON.stringify(body),
      );
    }
    await s.request('POST', '/users', {
      token,
      body: { name: 'vera', role: 'viewer', password: 'viewer-password-1' },
    });
    const viewer = await s.login('vera', 'viewer-password-1');
    const seen = await s.request('GET', '/backups?vm=bk', { token: viewer });
    assert.equal(seen.status, 200);
    assert.equal(seen.body.items.length, 3);
    const forbidden = await s.request('POST', `/vms/${vmId}/backups`, {
      token: viewer,
      body: { repository: 'main' },
    });
    assert.deepEqual([forbidden.status, forbidden.body.error?.code], [403, 'ZEN_FORBIDDEN']);
    // A restore makes a VM: it counts against the restorer's group's quota, as a creation does.
    await s.request('POST', '/users', {
      token,
      body: { name: 'otto', role: 'operator', password: 'operator-password-1' },
    });
    await s.request('POST', '/groups', { token, body: { name: 'team' } });
    await s.request('POST', '/groups/team/members', { token, body: { member: 'otto' } });
    await s.request('PUT', '/groups/team/quota', { token, body: { vms: 0 } });
    const operator = await s.login('otto', 'operator-password-1');
    // A whole backup (verify put the damaged chunk aside: this one writes it anew).
    const fresh = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    const overQuota = await s.request('POST', `/backups/${fresh.backupId}/restore`, {
      token: operator,
      body: { host: 'bk-b', name: 'over-quota' },
    });
    assert.deepEqual(
      [overQuota.status, overQuota.body.error?.code, overQuota.body.error?.details?.resource],
      [409, 'ZEN_QUOTA_EXCEEDED', 'vms'],
      JSON.stringify(overQuota.body),
    );
  });

  test('deleting the newest backup ends the checkpoint it left in the disk; the next backup reads in full', async () => {
    const disk = join(rootA, 'bk', 'disk0.qcow2');
    const bitmaps = () =>
      (
        JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', disk]).toString())[
          'format-specific'
        ]?.data?.bitmaps ?? []
      ).map((b: { name: string }) => b.name);
    const [newest] = (await s.request('GET', '/backups?vm=bk', { token })).body.items;
    const checkpoint = newest.disks[0].checkpoint as string;
    assert.deepEqual(bitmaps(), [checkpoint], 'only the newest backup keeps a checkpoint');
    const deleted = await s.request('DELETE', `/backups/${newest.id}`, { token });
    assert.equal(deleted.status, 204, JSON.stringify(deleted.body));
    assert.deepEqual(bitmaps(), []);
    const next = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(next.scope, 'full');
    assert.deepEqual(bitmaps().length, 1);
  });

  test('prune keeps what the retention says (a dry run deletes nothing); garbage collection then frees the chunks only pruned backups used', async () => {
    const before = (await s.request('GET', '/backups?vm=bk', { token })).body.items;
    assert.ok(before.length >= 2, `${before.length} backups`);
    const dry = await succeeded('POST', '/backup-repositories/main/prune', {
      vm: 'bk',
      last: 1,
      dryRun: true,
    });
    assert.deepEqual(dry.kept, [before[0].id]);
    assert.deepEqual(
      [...dry.pruned].sort(),
      before
        .slice(1)
        .map((b: { id: string }) => b.id)
        .sort(),
    );
    assert.equal(
      (await s.request('GET', '/backups?vm=bk', { token })).body.items.length,
      before.length,
    );
    await succeeded('POST', '/backup-repositories/main/prune', { vm: 'bk', last: 1 });
    const after = (await s.request('GET', '/backups?vm=bk', { token })).body.items;
    assert.deepEqual(
      after.map((b: { id: string }) => b.id),
      [before[0].id],
    );
    const chunksBefore = (await s.request('GET', '/backup-repositories/main', { token })).body.usage
      .chunks;
    const collected = await succeeded('POST', '/backup-repositories/main/garbage-collect', {
      graceSeconds: 0,
    });
    assert.ok(collected.removedChunks >= 1, JSON.stringify(collected));
    const chunksAfter = (await s.request('GET', '/backup-repositories/main', { token })).body.usage
      .chunks;
    assert.equal(chunksAfter, chunksBefore - collected.removedChunks);
    const bad = await s.request('POST', '/backup-repositories/main/prune', {
      token,
      body: { daily: 1, timeZone: 'Mars/Olympus' },
    });
    assert.deepEqual([bad.status, bad.body.error?.code], [400, 'ZEN_BAD_REQUEST']);
  });

  test('over the original, after naming it: the stopped VM keeps its identity and runs on the disk as it was; its old disk goes; refused while it runs, for another VM, with a host', async () => {
    const oldDisk = join(rootA, 'bk', 'disk0.qcow2');
    const [newest] = (await s.request('GET', '/backups?vm=bk', { token })).body.items;
    const pointHash = hashOf(oldDisk);
    const original = await vm(vmId);
    // What went wrong since: the disk overwritten.
    write(oldDisk, 0x66, 0, 16 * MiB);
    assert.notEqual(hashOf(oldDisk), pointHash);

    const refusals: Array<[unknown, number, string]> = [
      [{ replace: 'bk', host: 'bk-b' }, 400, 'ZEN_BAD_REQUEST'],
      [{ replace: 'bk-back' }, 400, 'ZEN_BAD_REQUEST'],
      [{}, 400, 'ZEN_BAD_REQUEST'],
    ];
    for (const [body, status, code] of refusals) {
      const refused = await s.request('POST', `/backups/${newest.id}/restore`, { token, body });
      assert.deepEqual(
        [refused.status, refused.body.error?.code],
        [status, code],
        `${JSON.stringify(body)}: ${JSON.stringify(refused.body)}`,
      );
    }
    await succeeded('POST', `/vms/${vmId}/start`);
    const running = await s.request('POST', `/backups/${newest.id}/restore`, {
      token,
      body: { replace: 'bk' },
    });
    assert.deepEqual([running.status, running.body.error?.code], [409, 'ZEN_INVALID_STATE']);
    await succeeded('POST', `/vms/${vmId}/stop`);

    const restored = await succeeded('POST', `/backups/${newest.id}/restore`, { replace: 'bk' });
    assert.equal(restored.name, 'bk');
    assert.equal(restored.vmId, vmId, 'the same VM in the inventory (its id, tags, history)');
    const now = await vm(restored.vmId);
    assert.equal(now.facts['vm.uuid'], original.facts['vm.uuid'], 'the same VM');
    assert.equal(now.computed['location.hostName'], 'bk-a');
    assert.equal(
      (await s.request('GET', '/vms?limit=100', { token })).body.items.filter(
        (v: { name: string; status: string }) => v.name === 'bk' && v.status === 'present',
      ).length,
      1,
    );
    const [newDir] = readdirSync(rootA).filter((d) => d.startsWith('bk-restored-'));
    assert.equal(hashOf(join(rootA, newDir!, 'disk0.qcow2')), pointHash);
    assert.equal(existsSync(oldDisk), false, 'the disk it had is gone');
    await succeeded('POST', `/vms/${restored.vmId}/start`);
    await ticks(restored.vmId);
    // Its old checkpoints went with the old disk: the next backup reads in full, and is whole.
    const next = await succeeded('POST', `/vms/${restored.vmId}/backups`, { repository: 'main' });
    assert.equal(next.scope, 'full');
    await succeeded('POST', `/vms/${restored.vmId}/stop`);
  });

  test('a guest writing a numbered pattern while it is backed up (full, then incremental): each backup holds exactly a prefix of what it wrote, as at one instant', async (t) => {
    const image = await ensureGuestImage();
    const hostA = (await s.request('GET', '/hosts/bk-a', { token })).body;
    const { vmId: id } = await succeeded('POST', '/vms', {
      name: 'bk-pattern',
      hostId: hostA.id,
      cpus: 1,
      memoryBytes: 128 * MiB,
      diskBytes: 16 * MiB,
      options: {
        kernel: image.kernel,
        initrd: image.initrd,
        cmdline: guestAppend({ pattern: true }),
      },
    });
    await succeeded('POST', `/vms/${id}/start`);
    const console = await GuestConsole.ofVm(s, token, id);
    try {
      const prefixes: number[] = [];
      for (const scope of ['full', 'incremental']) {
        const {
          before,
          after,
          result: backup,
        } = await console.patternAround(48 + prefixes.length * 48, () =>
          succeeded('POST', `/vms/${id}/backups`, { repository: 'main' }),
        );
        assert.equal(backup.scope, scope);
        let bytes: Buffer;
        if (scope === 'full') {
          const answer = await s.client(token).bytes(downloadBackupDisk, {
            params: { id: backup.backupId, diskId: 'disk0' },
          });
          const pieces: Buffer[] = [];
          for await (const piece of answer.body) pieces.push(Buffer.from(piece));
          bytes = Buffer.concat(pieces);
        } else {
          const restored = await succeeded('POST', `/backups/${backup.backupId}/restore`, {
            host: 'bk-b',
            name: 'bk-pattern-back',
          });
          assert.equal((await vm(restored.vmId)).computed['location.hostName'], 'bk-b');
          const [dir] = readdirSync(rootB).filter((d) => d.startsWith('bk-pattern-back-'));
          bytes = guestBytes(join(rootB, dir!, 'disk0.qcow2'));
        }
        const prefix = patternPrefix(bytes);
        t.diagnostic(
          `${scope}: ${before} blocks said before, ${prefix} in the backup, ${after} at most after`,
        );
        assert.ok(prefix >= before && prefix <= after, `${scope}: ${prefix} blocks`);
        prefixes.push(prefix);
      }
      assert.ok(
        prefixes[1]! > prefixes[0]!,
        `the guest wrote on between them: ${prefixes.join(', ')}`,
      );
    } finally {
      console.close();
      await succeeded('POST', `/vms/${id}/stop`);
    }
  });
});
