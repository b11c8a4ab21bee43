/**
 * Backup into a repository, side by side with the physical limit, in one run (not part of the
 * suite; take figures on a quiet machine):
 * - the disk: a qcow2 of `--size` (2 GiB by default) with realistic content — 40 % the machine's
 *   own shared libraries (compressible binaries), 20 % random bytes, 40 % never written;
 * - the physical limit: reading the disk (qemu-io, 64 MiB reads), and hashing
 *   (SHA-256) and compressing (deflate level 1) the same bytes, four chunks in flight (both run in
 *   Node's thread pool on every core); the limit is the slowest of the two;
 * - a full backup through qemu-nbd and the NBD client (what Zenith does for a stopped VM's disk);
 * - an incremental after 1 % of the disk changed in 64 KiB writes at random places, and another
 *   after 1 % changed in 4 MiB writes, through persistent dirty bitmaps;
 * - deduplication over 10 linked clones, each with 1 % of its own changes;
 * - a restore into a new qcow2 (laid out for the backup's data, written in place), beside the disk's
 *   write speed (`qemu-img convert` of the same bytes into a new qcow2, then fsync) and beside
 *   reading and checking the same chunks from the repository alone.
 *
 *   node --import tsx bench/backup.ts [--size 2048] (MiB)
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeImage } from '../src/hypervisors/qemu/image-writer.js';
import { readImage } from '../src/hypervisors/qemu/nbd-disk-stream.js';
import { isZeroes, restoreDisk, takeBackup } from '../src/services/backup/disk-backup.js';
import { dataExtents } from '../src/services/backup/qcow2-stream.js';
import { chunkName, encodeChunk } from '../src/services/backup/repository/chunk-codec.js';
import { writeRealisticDisk } from './disk-content.js';
import type { BackupManifest } from '../src/services/backup/repository/manifest.js';
import { BackupRepository } from '../src/services/backup/repository/repository.js';

const { values } = parseArgs({ options: { size: { type: 'string', default: '2048' } } });
const MiB = 1024 * 1024;
const size = Number(values.size) * MiB;
const dir = mkdtempSync(join(tmpdir(), 'zenith-bench-backup-'));
const run = (command: string, ...args: string[]) =>
  execFileSync(command, args, { encoding: 'utf8' });
const rate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

/** The disk: realistic content (disk-content.ts) in a qcow2. */
function makeDisk(): string {
  const raw = join(dir, 'disk.raw');
  writeRealisticDisk(raw, size);
  const image = join(dir, 'disk.qcow2');
  run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, image);
  rmSync(raw);
  return image;
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await work();
  return [result, performance.now() - started];
}

/** Hashing and compressing every data chunk of the disk as a backup would, four at once. */
async function hashAndCompress(image: string): Promise<{ ms: number; bytes: number }> {
  const raw = join(dir, 'limit.raw');
  run('qemu-img', 'convert', '-O', 'raw', image, raw);
  const fd = openSync(raw, 'r');
  const chunk = 4 * MiB;
  let bytes = 0;
  const started = performance.now();
  let next = 0;
  const lane = async () => {
    const buffer = Buffer.alloc(chunk);
    for (;;) {
      const offset = next;
      next += chunk;
      if (offset >= size) return;
      const length = readSync(fd, buffer, 0, Math.min(chunk, size - offset), offset);
      const data = buffer.subarray(0, length);
      if (isZeroes(data)) continue;
      // What a backup does to a chunk: name it (SHA-256) and encode it (deflate, as chunks are).
      await encodeChunk(data, await chunkName(data));
      bytes += length;
    }
  };
  await Promise.all([lane(), lane(), lane(), lane()]);
  const ms = performance.now() - started;
  closeSync(fd);
  rmSync(raw);
  return { ms, bytes };
}

/** How many of the disk's chunks differ between two backups. */
const countChanged = (before: BackupManifest, after: BackupManifest) =>
  after.disks[0]!.chunks.filter((name, index) => name !== before.disks[0]!.chunks[index]).length;

/** Reading and checking every data chunk of a backed-up disk from the repository, four at once. */
async function readBack(
  repository: BackupRepository,
  names: Array<string | null>,
): Promise<number> {
  const data = names.filter((name): name is string => name !== null);
  const started = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < data.length) await repository.getChunk(data[next++]!);
  };
  await Promise.all([lane(), lane(), lane(), lane()]);
  return performance.now() - started;
}

async function backUp(
  repository: BackupRepository,
  image: string,
  changedSince?: string,
  parent?: BackupManifest,
) {
  return takeBackup(
    repository,
    { vm: { id: 'vm_bench', name: 'bench', uuid: null }, ...(parent ? { parent } : {}) },
    [{ diskId: 'disk0', open: () => readImage(image, changedSince ? { changedSince } : {}) }],
  );
}

/**
 * 1 % of the disk rewritten, at random places: 64 KiB at a time (scattered, the worst case for
 * fixed chunks: about half of them touched), or 4 MiB at a time (clustered, as files are written).
 */
function change(image: string, piece = 64 * 1024): void {
  const commands: string[] = [];
  for (let written = 0; written < size / 100; written += piece) {
    const offset = Math.floor(Math.random() * (size / piece)) * piece;
    commands.push('-c', `write -P ${Math.floor(Math.random() * 255) + 1} ${offset} ${piece}`);
  }
  for (let at = 0; at < commands.length; at += 400)
    run('qemu-io', '-f', 'qcow2', ...commands.slice(at, at + 400), image);
}

console.log(
  `backup bench: ${size / MiB} MiB disk; load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
try {
  const image = makeDisk();
  const allocated = Number(
    JSON.parse(run('qemu-img', 'info', '--output=json', image))['actual-size'],
  );
  console.log(`disk made: ${(allocated / MiB).toFixed(0)} MiB allocated of ${size / MiB} MiB`);

  // Reading the whole disk as QEMU reads it (qemu-img cannot convert into /dev/null: 64 MiB reads by qemu-io).
  const reads: string[] = [];
  for (let at = 0; at < size; at += 64 * MiB)
    reads.push('-c', `read ${at} ${Math.min(64 * MiB, size - at)}`);
  const [, readMs] = await timed(async () => run('qemu-io', '-r', '-f', 'qcow2', ...reads, image));
  const limit = await hashAndCompress(image);
  const limitMs = Math.max(readMs, limit.ms);
  console.log(
    `physical limit: read ${rate(size, readMs)} (qemu-io reading it all: ${readMs.toFixed(0)} ms), hash+compress ${rate(limit.bytes, limit.ms)} of data (${limit.ms.toFixed(0)} ms) → the slower: ${limitMs.toFixed(0)} ms`,
  );

  const repository = await BackupRepository.create(join(dir, 'repository'));
  run('qemu-img', 'bitmap', '--add', '--enable', image, 'since-full');
  const [full, fullMs] = await timed(() => backUp(repository, image));
  const fullDisk = full.disks[0]!;
  console.log(
    `full backup: ${fullMs.toFixed(0)} ms (${rate(size, fullMs)} of disk, ${rate(fullDisk.readBytes, fullMs)} of data read), ${((limitMs / fullMs) * 100).toFixed(0)} % of the physical limit; read ${(fullDisk.readBytes / MiB).toFixed(0)} MiB, stored ${(fullDisk.storedBytes / MiB).toFixed(0)} MiB, chunks new ${fullDisk.newChunks} shared ${fullDisk.sharedChunks} zero ${fullDisk.zeroChunks}`,
  );

  change(image);
  const [incremental, incrementalMs] = await timed(() =>
    backUp(repository, image, 'since-full', full),
  );
  const incDisk = incremental.disks[0]!;
  console.log(
    `incremental after 1 % changed in 64 KiB writes: ${incrementalMs.toFixed(0)} ms, read ${(incDisk.readBytes / MiB).toFixed(0)} MiB (${((incDisk.readBytes / size) * 100).toFixed(1)} % of the disk), chunks rewritten ${countChanged(full, incremental)} of ${incDisk.chunks.length}, stored ${(incDisk.storedBytes / MiB).toFixed(1)} MiB`,
  );
  run('qemu-img', 'bitmap', '--add', '--enable', image, 'since-incremental');
  change(image, 4 * MiB);
  const [clustered, clusteredMs] = await timed(() =>
    backUp(repository, image, 'since-incremental', incremental),
  );
  const clusteredDisk = clustered.disks[0]!;
  console.log(
    `incremental after 1 % changed in 4 MiB writes: ${clusteredMs.toFixed(0)} ms, read ${(clusteredDisk.readBytes / MiB).toFixed(0)} MiB (${((clusteredDisk.readBytes / size) * 100).toFixed(1)} % of the disk), chunks rewritten ${countChanged(incremental, clustered)} of ${clusteredDisk.chunks.length}, stored ${(clusteredDisk.storedBytes / MiB).toFixed(1)} MiB`,
  );

  const clonesRepository = await BackupRepository.create(join(dir, 'clones'));
  await backUp(clonesRepository, image);
  for (let i = 0; i < 10; i++) {
    const clone = join(dir, `clone-${i}.qcow2`);
    run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', image, '-F', 'qcow2', clone);
    change(clone);
    await backUp(clonesRepository, clone);
  }
  const usage = await clonesRepository.usage();
  console.log(
    `deduplication over the disk and 10 linked clones (1 % changed each): ${(usage.logicalBytes / MiB).toFixed(0)} MiB of data in ${(usage.storedBytes / MiB).toFixed(0)} MiB stored — ratio ${(usage.logicalBytes / usage.storedBytes).toFixed(1)}:1`,
  );

  const target = join(dir, 'restored.qcow2');
  const writer = await writeImage(target, size, {
    dataExtents: dataExtents(clusteredDisk, repository.config.chunkSize),
  });
  const [, restoreMs] = await timed(async () => {
    await restoreDisk(repository, clusteredDisk, writer);
    await writer.finish();
  });
  const readBackMs = await readBack(repository, clusteredDisk.chunks);
  const copy = join(dir, 'copy.qcow2');
  // A restore's disk is durable when it ends (fsync): so is the comparator's.
  const [, writeMs] = await timed(async () => {
    run('qemu-img', 'convert', '-O', 'qcow2', image, copy);
    run('sync', copy);
  });
  console.log(
    `restore: ${restoreMs.toFixed(0)} ms (${rate(size, restoreMs)} of disk); the disk's write speed (qemu-img convert into a new qcow2, then fsync): ${writeMs.toFixed(0)} ms → restore at ${((writeMs / restoreMs) * 100).toFixed(0)} % of it; reading and checking the backup's chunks alone (read, inflate, SHA-256, four at once): ${readBackMs.toFixed(0)} ms → restore at ${((Math.max(writeMs, readBackMs) / restoreMs) * 100).toFixed(0)} % of the slower of the two`,
  );
  const same = run('qemu-img', 'compare', image, target).trim();
  console.log(`restored disk vs source: ${same}`);
} finally {
  console.log(
    `load average after: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  rmSync(dir, { recursive: true, force: true });
}
