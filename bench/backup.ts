/**
 * Backup into a repository, side by side with the physical limit, in one run (not part of the
 * suite; take figures on a quiet machine):
 * - the disk: a qcow2 of `--size` (2 GiB by default) with realistic content — 40 % the machine's
 *   own shared libraries (compressible binaries), 20 % random bytes, 40 % never written;
 * - the physical limit: reading the disk (qemu-io, 64 MiB reads), and hashing
 *   (SHA-256) and compressing (deflate level 1) the same bytes, four chunks in flight (the
 *   compression runs in Node's thread pool on every core); the limit is the slowest of the two;
 * - a full backup through qemu-nbd and the NBD client (what Zenith does for a stopped VM's disk);
 * - an incremental after 1 % of the disk changed, through a persistent dirty bitmap;
 * - deduplication over 10 linked clones, each with 1 % of its own changes;
 * - a restore into a new qcow2 over qemu-nbd, beside the disk's write speed (`qemu-img convert`
 *   of the same bytes into a new qcow2).
 *
 *   node --import tsx bench/backup.ts [--size 2048] (MiB)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { deflateRaw } from 'node:zlib';
import { readImage, writeImage } from '../src/hypervisors/qemu/nbd-disk-stream.js';
import { restoreDisk, takeBackup } from '../src/services/backup/disk-backup.js';
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
  const deflate = promisify(deflateRaw);
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
      if (data.every((byte) => byte === 0)) continue;
      createHash('sha256').update(data).digest();
      await deflate(data, { level: 1 });
      bytes += length;
    }
  };
  await Promise.all([lane(), lane(), lane(), lane()]);
  const ms = performance.now() - started;
  closeSync(fd);
  rmSync(raw);
  return { ms, bytes };
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

/** 1 % of the disk rewritten with random bytes, 64 KiB at a time at random places. */
function change(image: string): void {
  const commands: string[] = [];
  for (let written = 0; written < size / 100; written += 64 * 1024) {
    const offset = Math.floor(Math.random() * (size / (64 * 1024))) * 64 * 1024;
    commands.push('-c', `write -P ${Math.floor(Math.random() * 255) + 1} ${offset} 64k`);
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
    `incremental after 1 % changed: ${incrementalMs.toFixed(0)} ms, read ${(incDisk.readBytes / MiB).toFixed(0)} MiB (${((incDisk.readBytes / size) * 100).toFixed(1)} % of the disk), stored ${(incDisk.storedBytes / MiB).toFixed(1)} MiB`,
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
  const writer = await writeImage(target, size);
  const [, restoreMs] = await timed(async () => {
    await restoreDisk(repository, incDisk, writer);
    await writer.finish();
  });
  const copy = join(dir, 'copy.qcow2');
  const [, writeMs] = await timed(async () =>
    run('qemu-img', 'convert', '-O', 'qcow2', image, copy),
  );
  console.log(
    `restore: ${restoreMs.toFixed(0)} ms (${rate(size, restoreMs)} of disk); the disk's write speed (qemu-img convert into a new qcow2): ${writeMs.toFixed(0)} ms → restore at ${((writeMs / restoreMs) * 100).toFixed(0)} % of it`,
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
