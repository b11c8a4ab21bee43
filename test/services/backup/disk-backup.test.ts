/**
 * Disks backed up into a repository and restored from it, read and written over NBD as QEMU
 * exports them (qemu-nbd, QEMU's own NBD server; disks made and changed with qemu-img and
 * qemu-io): full then incremental through a persistent dirty bitmap, restores equal to the disk at
 * each backup point, deduplication between clones, encryption, verify catching a flipped byte,
 * garbage collection beside a running backup, and a full repository.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import type { DiskReader } from '../../../src/hypervisors/facets/disk-streams.js';
import { writeImage } from '../../../src/hypervisors/qemu/image-writer.js';
import { readImage } from '../../../src/hypervisors/qemu/nbd-disk-stream.js';
import { restoreDisk, takeBackup } from '../../../src/services/backup/disk-backup.js';
import { qcow2Bytes, qcow2Plan } from '../../../src/services/backup/qcow2-stream.js';
import type {
  BackupManifest,
  ManifestDisk,
} from '../../../src/services/backup/repository/manifest.js';
import { BackupRepository } from '../../../src/services/backup/repository/repository.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const chunkSize = 1 * MiB;
const run = (command: string, ...args: string[]) =>
  execFileSync(command, args, { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'zenith-backup-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let sockets = 0;

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
/** The disk's bytes as the guest sees them, as qemu-img reads the image. */
function rawOf(image: string): Buffer {
  const raw = join(dir, `raw-${sockets++}.img`);
  run('qemu-img', 'convert', '-O', 'raw', image, raw);
  const bytes = readFileSync(raw);
  rmSync(raw);
  return bytes;
}

/** A reader of the image over NBD: all of it, or what the bitmap marks. */
const readerOf = (image: string, changedSince?: string): Promise<DiskReader> =>
  readImage(image, changedSince ? { changedSince } : {});

async function backUp(
  repository: BackupRepository,
  vm: string,
  image: string,
  options: { changedSince?: string; parent?: BackupManifest } = {},
): Promise<BackupManifest> {
  return takeBackup(
    repository,
    {
      vm: { id: `vm_${vm}`, name: vm, uuid: null },
      ...(options.parent ? { parent: options.parent } : {}),
    },
    [{ diskId: 'disk0', open: () => readerOf(image, options.changedSince) }],
  );
}

/** Restores a backed-up disk into a new qcow2 image over NBD; answers its bytes. */
async function restored(
  repository: BackupRepository,
  disk: ManifestDisk,
): Promise<{ image: string; bytes: Buffer }> {
  const image = join(dir, `restored-${sockets++}.qcow2`);
  const writer = await writeImage(image, disk.capacityBytes);
  await restoreDisk(repository, disk, writer);
  await writer.finish();
  return { image, bytes: rawOf(image) };
}

function rejectsWith(code: string) {
  return (error: unknown) => {
    assert.ok(isZenithError(error), String(error));
    assert.equal(error.code, code, error.message);
    return true;
  };
}

/** A 24 MiB disk with data in a few places and a hole between. */
function newDisk(name: string): string {
  const image = join(dir, `${name}.qcow2`);
  run('qemu-img', 'create', '-q', '-f', 'qcow2', image, '24M');
  run(
    'qemu-io',
    '-f',
    'qcow2',
    '-c',
    'write -P 0x11 0 3M',
    '-c',
    'write -P 0x22 10M 512k',
    '-c',
    'write -P 0x33 20M 4M',
    image,
  );
  return image;
}

test('a full backup, then an incremental through a dirty bitmap reading only the changed extents; each restores to its point in time', async () => {
  const repository = await BackupRepository.create(join(dir, 'repo-inc'), { chunkSize });
  const image = newDisk('inc');
  // The bitmap starts at the first backup's point: it tracks what changes after it.
  run('qemu-img', 'bitmap', '--add', '--enable', image, 'since-1');
  const atFirst = rawOf(image);
  const first = await backUp(repository, 'inc', image);
  const [full] = first.disks;
  assert.equal(full!.scope, 'full');
  // Data in 3 + 1 + 4 chunks; the other 16 are holes: neither read nor stored.
  assert.equal(full!.readBytes, 8 * MiB);
  assert.equal(full!.zeroChunks, 16);
  assert.equal(full!.newChunks, 3);
  assert.equal(full!.sharedChunks, 5, 'chunks of one pattern are stored once');

  // 64 KiB in chunk 1, 4 KiB in chunk 15 (a hole until now), and chunk 21 zeroed.
  run(
    'qemu-io',
    '-f',
    'qcow2',
    '-c',
    'write -P 0x44 1M 64k',
    '-c',
    'write -P 0x55 15M 4k',
    '-c',
    'write -z 21M 1M',
    image,
  );
  const atSecond = rawOf(image);
  const second = await backUp(repository, 'inc', image, { changedSince: 'since-1', parent: first });
  const [changed] = second.disks;
  assert.equal(changed!.scope, 'changed');
  // Only what the bitmap marks (64 KiB granules) is read from the disk; the rest of chunks 1 and
  // 15 comes from the first backup, and chunk 21, changed whole, is read whole.
  assert.equal(changed!.readBytes, 64 * KiB + 64 * KiB + MiB, 'only the changed extents are read');
  assert.equal(changed!.zeroChunks, 16 - 1 + 1, 'chunk 15 has data now, chunk 21 reads as zeroes');
  assert.equal(second.parent, first.id);

  assert.equal(sha256((await restored(repository, full!)).bytes), sha256(atFirst));
  assert.equal(sha256((await restored(repository, changed!)).bytes), sha256(atSecond));
  const { backups } = await repository.listBackups();
  assert.deepEqual(
    backups.map((b) => b.id),
    [first.id, second.id],
  );
});

test('an incremental over a chunk the last backup can no longer give back reads that chunk whole from the disk, and is right', async () => {
  const repository = await BackupRepository.create(join(dir, 'repo-patch'), { chunkSize });
  const image = newDisk('patch');
  run('qemu-img', 'bitmap', '--add', '--enable', image, 'since-1');
  const first = await backUp(repository, 'patch', image);
  // Chunk 10 (512 KiB of 0x22, then zeroes) damaged in the repository; 4 KiB of it and of chunk 21 written since.
  const victim = first.disks[0]!.chunks[10]!;
  const path = join(dir, 'repo-patch', 'chunks', victim.slice(0, 4), victim);
  writeFileSync(path, readFileSync(path).subarray(0, 100));
  run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x66 10M 4k', '-c', 'write -P 0x67 21M 4k', image);
  const second = await backUp(repository, 'patch', image, {
    changedSince: 'since-1',
    parent: first,
  });
  assert.equal(
    second.disks[0]!.readBytes,
    MiB + 64 * KiB,
    'chunk 10 whole (its last copy is damaged), of chunk 21 only the granule written',
  );
  assert.equal(sha256((await restored(repository, second.disks[0]!)).bytes), sha256(rawOf(image)));
});

test('a backed-up disk streams as a qcow2 image that qemu-img checks clean and reads as the disk was, holes left out; whatever the chunk size and an odd capacity', async () => {
  for (const [name, size, chunk] of [
    ['q-default', 24 * MiB, chunkSize],
    ['q-odd', 10 * MiB + 4096, 17 * 4096],
  ] as const) {
    const repository = await BackupRepository.create(join(dir, `repo-${name}`), {
      chunkSize: chunk,
    });
    const image = join(dir, `${name}.qcow2`);
    run('qemu-img', 'create', '-q', '-f', 'qcow2', image, String(size));
    run(
      'qemu-io',
      '-f',
      'qcow2',
      '-c',
      'write -P 0x21 0 200k',
      '-c',
      `write -P 0x22 ${5 * MiB} 1M`,
      '-c',
      `write -P 0x23 ${size - 4096} 4k`,
      image,
    );
    const manifest = await backUp(repository, name, image);
    const disk = manifest.disks[0]!;
    const layout = qcow2Plan(disk, chunk);
    const file = join(dir, `${name}-download.qcow2`);
    const parts: Buffer[] = [];
    for await (const part of qcow2Bytes(repository, disk, layout, async () => undefined))
      parts.push(part);
    writeFileSync(file, Buffer.concat(parts));
    assert.equal(statSync(file).size, layout.sizeBytes, 'as long as the layout said');
    assert.ok(layout.sizeBytes < size / 2, `holes take no room: ${layout.sizeBytes} bytes`);
    const check = JSON.parse(run('qemu-img', 'check', '--output=json', file)) as {
      'check-errors': number;
      corruptions?: number;
      leaks?: number;
    };
    assert.deepEqual([check['check-errors'], check.corruptions ?? 0, check.leaks ?? 0], [0, 0, 0]);
    assert.equal(sha256(rawOf(file)), sha256(rawOf(image)), `${name}: the disk as it was`);
    const info = JSON.parse(run('qemu-img', 'info', '--output=json', file)) as {
      'virtual-size': number;
      format: string;
    };
    assert.deepEqual([info.format, info['virtual-size']], ['qcow2', size]);
  }
});

test('clones share their chunks; an encrypted repository stores neither plain bytes nor their hashes', async () => {
  const plainRepository = await BackupRepository.create(join(dir, 'repo-dedup'), { chunkSize });
  const original = newDisk('origin');
  const clone = join(dir, 'clone.qcow2');
  run('qemu-img', 'convert', '-O', 'qcow2', original, clone);
  run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x66 5M 1M', clone);
  const a = await backUp(plainRepository, 'origin', original);
  const b = await backUp(plainRepository, 'clone', clone);
  assert.equal(b.disks[0]!.newChunks, 1, 'only the chunk the clone changed is new');
  assert.equal(b.disks[0]!.storedBytes > 0, true);
  const usage = await plainRepository.usage();
  assert.equal(usage.chunks, 4);
  assert.equal(usage.logicalBytes, 17 * MiB);
  assert.equal(usage.backups, 2);
  assert.ok(
    a.disks[0]!.chunks.includes(createHash('sha256').update(Buffer.alloc(MiB, 0x11)).digest('hex')),
  );

  const key = randomBytes(32);
  const sealedRepository = await BackupRepository.create(join(dir, 'repo-sealed'), {
    chunkSize,
    key,
  });
  const sealed = await backUp(sealedRepository, 'origin', original);
  const plainName = createHash('sha256').update(Buffer.alloc(MiB, 0x11)).digest('hex');
  assert.ok(
    !sealed.disks[0]!.chunks.includes(plainName),
    'chunk names are keyed, not plain hashes',
  );
  for (const prefix of readdirSync(join(dir, 'repo-sealed', 'chunks')))
    for (const name of readdirSync(join(dir, 'repo-sealed', 'chunks', prefix))) {
      const blob = readFileSync(join(dir, 'repo-sealed', 'chunks', prefix, name));
      assert.equal(
        blob.includes(Buffer.alloc(64, 0x11)),
        false,
        'no plain run of the data in a chunk file',
      );
    }
  await assert.rejects(
    BackupRepository.open(join(dir, 'repo-sealed')),
    rejectsWith('ZEN_BACKUP_KEY_WRONG'),
  );
  await assert.rejects(
    BackupRepository.open(join(dir, 'repo-sealed'), { key: randomBytes(32) }),
    rejectsWith('ZEN_BACKUP_KEY_WRONG'),
  );
  const reopened = await BackupRepository.open(join(dir, 'repo-sealed'), { key });
  assert.equal(sha256((await restored(reopened, sealed.disks[0]!)).bytes), sha256(rawOf(original)));
});

test('verify finds a flipped byte and names the backups it damages; a restore from it stops and leaves no image', async () => {
  const repository = await BackupRepository.create(join(dir, 'repo-verify'), { chunkSize });
  const image = newDisk('verify');
  // A chunk of random bytes (stored as they are: they do not compress), in both backups.
  const noise = randomBytes(MiB);
  writeFileSync(join(dir, 'noise.bin'), noise);
  run('qemu-io', '-f', 'qcow2', '-c', `write -s ${join(dir, 'noise.bin')} 6M 1M`, image);
  const one = await backUp(repository, 'verify', image);
  run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x77 12M 1M', image);
  const two = await backUp(repository, 'verify', image);
  assert.deepEqual((await repository.verify()).damaged, []);

  // One byte of the random chunk's file flipped.
  const victim = createHash('sha256').update(noise).digest('hex');
  const path = join(dir, 'repo-verify', 'chunks', victim.slice(0, 4), victim);
  const blob = readFileSync(path);
  blob[Math.floor(blob.length / 2)]! ^= 0x01;
  writeFileSync(path, blob);
  const report = await repository.verify();
  assert.deepEqual(report.damagedChunks, [victim]);
  assert.deepEqual(report.damaged.map((d) => d.backupId).sort(), [one.id, two.id].sort());

  const target = join(dir, 'never.qcow2');
  const before = readdirSync(dir).filter((f) => f.startsWith('restored-')).length;
  await assert.rejects(
    restored(repository, two.disks[0]!),
    rejectsWith('ZEN_BACKUP_CHUNK_DAMAGED'),
  );
  const leftover = readdirSync(dir).filter(
    (f) => f.startsWith('restored-') && f.endsWith('.qcow2'),
  );
  assert.equal(leftover.length, before, 'the half-restored image was removed');
  assert.equal(readdirSync(dir).includes(target), false);

  // The damaged chunk was put aside: the next backup of those bytes writes it anew, and the
  // backups that named it are whole again.
  assert.equal(readdirSync(dirname(path)).includes(`${victim}.bad`), true);
  const three = await backUp(repository, 'verify', image);
  assert.equal(three.disks[0]!.newChunks, 1, 'the random chunk, written again');
  assert.deepEqual((await repository.verify()).damaged, []);
  assert.equal(
    (await restored(repository, two.disks[0]!)).bytes.length,
    two.disks[0]!.capacityBytes,
  );

  // A manifest altered by hand is refused, never read as a backup.
  const manifestPath = join(dir, 'repo-verify', 'backups', `${one.id}.json`);
  writeFileSync(manifestPath, readFileSync(manifestPath, 'utf8').replace('"verify"', '"other"'));
  await assert.rejects(repository.readManifest(one.id), rejectsWith('ZEN_BACKUP_MANIFEST_DAMAGED'));
});

test('garbage collection removes only what no backup names, keeps what a running backup uses, and a cut-off backup leaves nothing listed', async () => {
  const repository = await BackupRepository.create(join(dir, 'repo-gc'), { chunkSize });
  const image = newDisk('gc');
  const kept = await backUp(repository, 'gc', image);
  run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x88 0 1M', image);
  const dropped = await backUp(repository, 'gc', image);
  const onlyInDropped = dropped.disks[0]!.chunks.filter(
    (c) => c !== null && !kept.disks[0]!.chunks.includes(c),
  );
  assert.equal(onlyInDropped.length, 1);

  // Both backups were taken long ago (only chunks older than the cutoff can go).
  const longAgo = new Date(Date.now() - 3_600_000);
  for (const prefix of readdirSync(join(dir, 'repo-gc', 'chunks')))
    for (const name of readdirSync(join(dir, 'repo-gc', 'chunks', prefix)))
      utimesSync(join(dir, 'repo-gc', 'chunks', prefix, name), longAgo, longAgo);
  // A backup under way: it wrote a chunk no manifest names yet, and reuses an orphan from long ago.
  const running = await repository.beginBackup();
  const fresh = await running.putChunk(Buffer.alloc(chunkSize, 0x99));
  const orphan = await repository.putChunk(Buffer.alloc(chunkSize, 0xaa));
  utimesSync(
    join(dir, 'repo-gc', 'chunks', orphan.name.slice(0, 4), orphan.name),
    longAgo,
    longAgo,
  );
  assert.equal(await running.reuseChunk(orphan.name), true);
  // Another orphan no one uses, and a cut-off write's file in tmp/.
  const garbage = await repository.putChunk(Buffer.alloc(chunkSize, 0xbb));
  utimesSync(
    join(dir, 'repo-gc', 'chunks', garbage.name.slice(0, 4), garbage.name),
    longAgo,
    longAgo,
  );
  writeFileSync(join(dir, 'repo-gc', 'tmp', 'cut.tmp'), 'x');
  utimesSync(join(dir, 'repo-gc', 'tmp', 'cut.tmp'), longAgo, longAgo);

  await repository.deleteBackup(dropped.id);
  const report = await repository.collectGarbage({ graceMs: 60_000 });
  assert.equal(report.removedChunks, 2, 'the dropped backup’s own chunk and the unused orphan');
  assert.deepEqual(report.missing, []);
  const present = (name: string) => repository.touchChunk(name);
  assert.equal(await present(onlyInDropped[0]!), false);
  assert.equal(await present(garbage.name), false);
  assert.equal(await present(fresh.name), true, 'the running backup’s new chunk stays');
  assert.equal(await present(orphan.name), true, 'the chunk the running backup reuses stays');
  assert.deepEqual(readdirSync(join(dir, 'repo-gc', 'tmp')), []);
  assert.equal(
    sha256((await restored(repository, kept.disks[0]!)).bytes),
    sha256(rawOf(newDisk('gc-again'))),
  );

  // The running backup is cut off (its process died): no manifest, so nothing is listed; once its
  // lease is stale, its chunks go too.
  const { backups } = await repository.listBackups();
  assert.deepEqual(
    backups.map((b) => b.id),
    [kept.id],
  );
  const lease = join(dir, 'repo-gc', 'writers', `${running.id}.json`);
  utimesSync(lease, longAgo, longAgo);
  const fresher = new Date(Date.now() - 30 * 60_000);
  utimesSync(join(dir, 'repo-gc', 'chunks', fresh.name.slice(0, 4), fresh.name), fresher, fresher);
  const later = await repository.collectGarbage({ graceMs: 60_000 });
  assert.equal(later.staleWriters, 1);
  assert.equal(await present(fresh.name), false);
  await assert.rejects(
    running.commit({
      vm: { id: 'vm_x', name: 'x', uuid: null },
      takenAt: '',
      finishedAt: '',
      parent: null,
      job: null,
      disks: [],
    }),
    rejectsWith('ZEN_INVALID_STATE'),
  );
});

test('a full repository gives ZEN_BACKUP_REPOSITORY_FULL and keeps no half-written file or manifest', async (t) => {
  const mount = join(dir, 'small');
  mkdirSync(mount);
  run('mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mount);
  t.after(() => run('umount', mount));
  const repository = await BackupRepository.create(join(mount, 'repo'), { chunkSize });
  const image = join(dir, 'random.qcow2');
  run('qemu-img', 'create', '-q', '-f', 'qcow2', image, '8M');
  const random = join(dir, 'random.bin');
  writeFileSync(random, randomBytes(8 * MiB));
  run('qemu-img', 'convert', '-n', '-f', 'raw', '-O', 'qcow2', random, image);
  await assert.rejects(
    backUp(repository, 'random', image),
    rejectsWith('ZEN_BACKUP_REPOSITORY_FULL'),
  );
  assert.deepEqual((await repository.listBackups()).backups, []);
  assert.deepEqual(readdirSync(join(mount, 'repo', 'tmp')), [], 'no half-written chunk');
  assert.deepEqual(readdirSync(join(mount, 'repo', 'backups')), []);
  assert.deepEqual(readdirSync(join(mount, 'repo', 'writers')), [], 'the backup’s lease is gone');
  assert.deepEqual((await repository.verify()).damaged, []);
});

test('a repository is made only in an empty directory, and opened only where one is', async () => {
  mkdirSync(join(dir, 'busy'));
  writeFileSync(join(dir, 'busy', 'file'), 'x');
  await assert.rejects(
    BackupRepository.create(join(dir, 'busy')),
    rejectsWith('ZEN_BACKUP_REPOSITORY_INVALID'),
  );
  await assert.rejects(
    BackupRepository.open(join(dir, 'busy')),
    rejectsWith('ZEN_BACKUP_REPOSITORY_INVALID'),
  );
  await assert.rejects(
    BackupRepository.create(join(dir, 'odd'), { chunkSize: 1000 }),
    rejectsWith('ZEN_BAD_REQUEST'),
  );
  const repository = await BackupRepository.create(join(dir, 'fresh'));
  assert.equal((await BackupRepository.open(join(dir, 'fresh'))).config.id, repository.config.id);
  await assert.rejects(
    repository.readManifest('backup_01M96000000000000000000000'),
    rejectsWith('ZEN_NOT_FOUND'),
  );
  await assert.rejects(
    repository.readManifest('../zenith-backup-repository'),
    rejectsWith('ZEN_BAD_ID'),
  );
});
