/**
 * The QEMU driver's disk-stream facet against real QEMU (TCG) and qemu-nbd: a VM's disk read into
 * a backup repository while the VM is stopped and while it runs (QEMU's own NBD server over a
 * point-in-time overlay), in full and through its checkpoints (persistent dirty bitmaps), and
 * written back into a new image. A checkpoint whose QEMU was killed is refused, never read wrong.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import { processAlive } from '../../../src/core/process.js';
import type { DiscoveredVm } from '../../../src/hypervisors/driver.js';
import type { DiskReadOptions } from '../../../src/hypervisors/facets/disk-streams.js';
import { DiskClaims } from '../../../src/hypervisors/qemu/disk-claims.js';
import { stagingFile } from '../../../src/hypervisors/qemu/image-writer.js';
import { imageBitmaps, keepsBitmaps } from '../../../src/hypervisors/qemu/qemu-img.js';
import { QemuDriver } from '../../../src/hypervisors/qemu/qemu-driver.js';
import { restoreDisk, takeBackup } from '../../../src/services/backup/disk-backup.js';
import type { BackupManifest } from '../../../src/services/backup/repository/manifest.js';
import { BackupRepository } from '../../../src/services/backup/repository/repository.js';
import { GUEST_KERNEL_APPEND } from '../../../src/testing/guest-image.js';
import { until } from '../../../src/testing/wait.js';
import { startTcgDriver } from '../../../src/testing/tcg-driver.js';

const MiB = 1024 * 1024;
const context = { signal: new AbortController().signal, progress: () => undefined };
const base = mkdtempSync(join(tmpdir(), 'zenith-disk-streams-'));
const run = (command: string, ...args: string[]) =>
  execFileSync(command, args, { encoding: 'utf8' });
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
let driver: QemuDriver;
let repository: BackupRepository;
let vmId: string;
let diskFile: string;

/** The disk's bytes now, as qemu-img reads them (-U: beside a running QEMU). */
function rawOf(file: string): Buffer {
  const raw = join(base, 'raw.img');
  run('qemu-img', 'convert', '-U', '-O', 'raw', file, raw);
  const bytes = readFileSync(raw);
  rmSync(raw);
  return bytes;
}

/** One backup of disk0 through the facet; the reader's checkpoint comes back with it. */
async function backUp(options: DiskReadOptions, parent?: BackupManifest) {
  const facet = driver.facets.diskStreams;
  const manifest = await takeBackup(
    repository,
    { vm: { id: 'vm_x', name: 'streamed', uuid: null }, ...(parent ? { parent } : {}) },
    [{ diskId: 'disk0', open: () => facet.openReader(vmId, 'disk0', options, context) }],
  );
  return { manifest, checkpoint: { name: manifest.disks[0]!.checkpoint! } };
}

const vmNow = async () =>
  (await driver.discover()).objects.find(
    (o) => o.kind === 'vm' && o.externalId === vmId,
  ) as DiscoveredVm;

async function restoredBytes(manifest: BackupManifest): Promise<Buffer> {
  const file = join(base, 'disks', `restored-${manifest.id}.qcow2`);
  const writer = await driver.facets.diskStreams.openWriter(
    { location: { path: file }, format: 'qcow2', capacityBytes: manifest.disks[0]!.capacityBytes },
    context,
  );
  await restoreDisk(repository, manifest.disks[0]!, writer);
  const disk = await writer.finish();
  assert.equal(disk.location.path, file);
  return rawOf(file);
}

before(async () => {
  const started = await startTcgDriver(base, 'streamer');
  driver = started.driver;
  const image = started.image;
  const vm = await driver.createVm(
    {
      name: 'streamed',
      cpus: 1,
      memoryBytes: 128 * MiB,
      diskBytes: 32 * MiB,
      hostExternalId: 'streamer',
      options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
    },
    context,
  );
  vmId = vm.externalId;
  diskFile = join(base, 'disks', 'streamed', 'disk0.qcow2');
  assert.ok(existsSync(diskFile), diskFile);
  repository = await BackupRepository.create(join(base, 'repository'), { chunkSize: MiB });
});
after(async () => {
  await driver?.stopVm(vmId, context).catch(() => undefined);
  await driver?.close();
  rmSync(base, { recursive: true, force: true });
});

test('a stopped VM: a full read, then only what changed since its checkpoint; each restores to its point in time', async () => {
  assert.deepEqual(await driver.facets.diskStreams.listDisks(vmId), [
    { diskId: 'disk0', capacityBytes: 32 * MiB, format: 'qcow2' },
  ]);
  run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x11 0 2M', '-c', 'write -P 0x22 9M 1M', diskFile);
  const atFirst = rawOf(diskFile);
  const first = await backUp({});
  assert.equal(first.manifest.disks[0]!.readBytes, 3 * MiB, 'holes are neither read nor stored');
  assert.deepEqual(
    (await imageBitmaps(diskFile)).map((b) => b.name),
    [first.checkpoint.name],
  );

  run(
    'qemu-io',
    '-f',
    'qcow2',
    '-c',
    'write -P 0x33 9M 64k',
    '-c',
    'write -P 0x44 20M 4k',
    diskFile,
  );
  const atSecond = rawOf(diskFile);
  const second = await backUp({ changedSince: first.checkpoint }, first.manifest);
  assert.equal(
    second.manifest.disks[0]!.readBytes,
    2 * 64 * 1024,
    'only the two 64 KiB granules of the bitmap written since, not their chunks',
  );
  await driver.facets.diskStreams.releaseCheckpoint(vmId, 'disk0', first.checkpoint);
  assert.deepEqual(
    (await imageBitmaps(diskFile)).map((b) => b.name),
    [second.checkpoint.name],
  );

  assert.equal(sha256(await restoredBytes(first.manifest)), sha256(atFirst));
  assert.equal(sha256(await restoredBytes(second.manifest)), sha256(atSecond));
  await assert.rejects(
    driver.facets.diskStreams.openWriter(
      { location: { path: diskFile }, format: 'qcow2', capacityBytes: MiB },
      context,
    ),
    (error: unknown) => isZenithError(error) && error.code === 'ZEN_CONFLICT',
    'a restore never overwrites a disk',
  );
});

test('a restore stages its bytes beside the new disk: a write cut off blocks the next until it is replaced; an aborted one leaves nothing; the disk made is a qcow2 that keeps checkpoints, readable by its owner and group only', async () => {
  const streams = driver.facets.diskStreams;
  const file = join(base, 'disks', 'staged', 'disk0.qcow2');
  const newDisk = (replace?: boolean) => ({
    location: { path: file },
    format: 'qcow2' as const,
    capacityBytes: 4 * MiB,
    ...(replace === undefined ? {} : { replace }),
  });
  // A write cut off (its process killed): the staging file stays, the disk was never made.
  const cut = await streams.openWriter(newDisk(), context);
  await cut.write(MiB, Buffer.alloc(MiB, 7));
  assert.equal(existsSync(file), false, 'no disk before the write finishes');
  assert.ok(existsSync(stagingFile(file)));
  await assert.rejects(
    streams.openWriter(newDisk(), context),
    (error: unknown) => isZenithError(error) && error.code === 'ZEN_CONFLICT',
    'a second write of the same disk waits for the first, or for a replace',
  );
  await assert.rejects(
    cut.write(4 * MiB - 512, Buffer.alloc(MiB)),
    (error: unknown) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
    'nothing is written past the disk',
  );

  const writer = await streams.openWriter(newDisk(true), context);
  const bytes = Buffer.alloc(MiB);
  for (let i = 0; i < bytes.length; i += 8) bytes.writeBigUInt64LE(BigInt(i), i);
  await writer.write(2 * MiB, bytes);
  await writer.writeZeroes(2 * MiB + 4096, 4096);
  const disk = await writer.finish();
  assert.equal(disk.format, 'qcow2');
  assert.equal(existsSync(stagingFile(file)), false, 'the staging file is gone');
  assert.equal(statSync(file).mode & 0o777, 0o640);
  assert.equal(await keepsBitmaps(file), true, 'compat 1.1: later backups can be incremental');
  const expected = Buffer.alloc(4 * MiB);
  bytes.copy(expected, 2 * MiB);
  expected.fill(0, 2 * MiB + 4096, 2 * MiB + 8192);
  assert.equal(sha256(rawOf(file)), sha256(expected), 'exactly what was written, zeroes elsewhere');
  assert.match(run('qemu-img', 'info', '--output=json', file), /"format": "qcow2"/);

  const aborted = await streams.openWriter(
    { ...newDisk(), location: { path: join(base, 'disks', 'staged', 'disk1.qcow2') } },
    context,
  );
  await aborted.write(0, bytes);
  await aborted.abort();
  assert.deepEqual(readdirSync(join(base, 'disks', 'staged')), ['disk0.qcow2']);
  await streams.removeImages([{ path: file }]);
});

test('a restore that names its data extents writes the qcow2 in place: only they hold data, a write outside them is refused, and a file that appears meanwhile is never overwritten', async () => {
  const streams = driver.facets.diskStreams;
  const file = join(base, 'disks', 'in-place', 'disk0.qcow2');
  const newDisk = {
    location: { path: file },
    format: 'qcow2' as const,
    capacityBytes: 8 * MiB,
    dataExtents: [
      [MiB, MiB],
      [6 * MiB, 2 * MiB],
    ] as const,
  };
  const writer = await streams.openWriter(newDisk, context);
  const bytes = (salt: number) => {
    const b = Buffer.alloc(MiB);
    for (let i = 0; i < b.length; i += 8) b.writeBigUInt64LE(BigInt(i + salt), i);
    return b;
  };
  // Out of order, as a restore's chunks arrive.
  await writer.write(7 * MiB, bytes(3));
  await writer.write(MiB, bytes(1));
  await writer.write(6 * MiB, bytes(2));
  await writer.writeZeroes(6 * MiB + 4096, 4096);
  await writer.writeZeroes(3 * MiB, MiB); // a hole: nothing to write
  await assert.rejects(
    writer.write(3 * MiB, Buffer.alloc(4096, 1)),
    (error: unknown) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
    'a write outside the extents named',
  );
  assert.equal(existsSync(file), false, 'no disk before the write finishes');
  const disk = await writer.finish();
  assert.equal(disk.format, 'qcow2');
  assert.equal(existsSync(stagingFile(file)), false, 'the staging file is gone');
  assert.equal(statSync(file).mode & 0o777, 0o640);
  assert.equal(await keepsBitmaps(file), true, 'compat 1.1: later backups can be incremental');
  const check = JSON.parse(run('qemu-img', 'check', '--output=json', file)) as {
    'check-errors': number;
    corruptions?: number;
    leaks?: number;
  };
  assert.deepEqual([check['check-errors'], check.corruptions ?? 0, check.leaks ?? 0], [0, 0, 0]);
  const expected = Buffer.alloc(8 * MiB);
  bytes(1).copy(expected, MiB);
  bytes(2).copy(expected, 6 * MiB);
  bytes(3).copy(expected, 7 * MiB);
  expected.fill(0, 6 * MiB + 4096, 6 * MiB + 8192);
  assert.equal(sha256(rawOf(file)), sha256(expected), 'exactly what was written, zeroes elsewhere');
  const map = JSON.parse(run('qemu-img', 'map', '--output=json', file)) as Array<{
    start: number;
    length: number;
    data: boolean;
  }>;
  assert.deepEqual(
    map.filter((m) => m.data).map((m) => [m.start, m.length]),
    [
      [MiB, MiB],
      [6 * MiB, 2 * MiB],
    ],
    'only the extents take room',
  );

  // Another file at the disk's path by the time the write finishes: it stays as it was.
  const second = join(base, 'disks', 'in-place', 'disk1.qcow2');
  const late = await streams.openWriter({ ...newDisk, location: { path: second } }, context);
  await late.write(MiB, bytes(4));
  writeFileSync(second, 'not ours');
  await assert.rejects(
    late.finish(),
    (error: unknown) => isZenithError(error) && error.code === 'ZEN_CONFLICT',
  );
  assert.equal(readFileSync(second, 'utf8'), 'not ours');
  assert.equal(existsSync(stagingFile(second)), false);
  rmSync(second);
  await streams.removeImages([{ path: file }]);
});

test('a reader killed with SIGKILL leaves no qemu-nbd holding the disk; one read at a time; a new disk only inside the storage roots', async () => {
  const before = new Set((await imageBitmaps(diskFile)).map((b) => b.name));
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'disk-reader-child.ts'),
      join(base, 'state'),
      join(base, 'disks'),
      vmId,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let said = '';
  child.stdout.on('data', (chunk: Buffer) => (said += chunk.toString()));
  await until(
    'the child to open its reader',
    async () => (said.startsWith('open') ? true : undefined),
    60_000,
  );
  const servers = () =>
    spawnSync('pgrep', ['-f', `qemu-nbd.*${diskFile}`], { encoding: 'utf8' }).stdout.trim();
  assert.notEqual(servers(), '', 'its qemu-nbd serves the disk');
  child.kill('SIGKILL');
  await until(
    'no qemu-nbd left on the disk',
    async () => (servers() === '' ? true : undefined),
    10_000,
  );
  // The checkpoint it added is no one's: released here (a later read never starts from it).
  for (const bitmap of await imageBitmaps(diskFile))
    if (!before.has(bitmap.name))
      await driver.facets.diskStreams.releaseCheckpoint(vmId, 'disk0', { name: bitmap.name });

  const open = await driver.facets.diskStreams.openReader(vmId, 'disk0', {}, context);
  await assert.rejects(
    driver.facets.diskStreams.openReader(vmId, 'disk0', {}, context),
    (error: unknown) => isZenithError(error) && error.code === 'ZEN_CONFLICT',
  );
  await open.close();
  await driver.facets.diskStreams.releaseCheckpoint(vmId, 'disk0', open.checkpoint!);
  await assert.rejects(
    driver.facets.diskStreams.openWriter(
      { location: { path: join(base, 'elsewhere.qcow2') }, format: 'qcow2', capacityBytes: MiB },
      context,
    ),
    (error: unknown) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
  );
  assert.equal(existsSync(join(base, 'elsewhere.qcow2')), false);
});

test('a running VM is read through QEMU at a point in time without stopping it, and leaves nothing behind; a checkpoint its QEMU did not save is refused', async () => {
  const atStart = rawOf(diskFile);
  const [checkpoint] = (await imageBitmaps(diskFile)).map((b) => ({ name: b.name }));
  await driver.startVm(vmId, context);
  const qmp = () => driver.facets.diskStreams['host'].vm(vmId).qmp();
  const full = await backUp({});
  assert.equal((await vmNow()).powerState, 'running');
  assert.equal(
    sha256(await restoredBytes(full.manifest)),
    sha256(atStart),
    'the point-in-time view is the disk',
  );

  // What a reader killed with SIGKILL would have left in QEMU: its NBD server, overlay node and
  // file, frozen checkpoint copy. The next read clears them first.
  const [disk] = await qmp().execute('query-block');
  const diskNode = disk!.inserted!['node-name']!;
  const deadFleece = join(base, 'state', 'vms', vmId, 'fleece-deadbeef.qcow2');
  run('qemu-img', 'create', '-q', '-f', 'qcow2', deadFleece, String(32 * MiB));
  await qmp().execute('blockdev-add', {
    driver: 'qcow2',
    'node-name': 'zenith-fleece-dead',
    file: { driver: 'file', filename: deadFleece },
    backing: diskNode,
  });
  await qmp().execute('nbd-server-start', {
    addr: { type: 'unix', data: { path: join(base, 'dead.sock') } },
  });
  await qmp().execute('transaction', {
    actions: [
      {
        type: 'block-dirty-bitmap-add',
        data: { node: diskNode, name: 'zenith-point-dead', persistent: false, disabled: true },
      },
    ],
  });

  // Since the last checkpoint nothing was written: nothing is read, every chunk is the parent's.
  const since = await backUp({ changedSince: full.checkpoint }, full.manifest);
  // The checkpoint read from records on (a frozen copy was exported): a backup not kept, or a read
  // that failed, leaves it as good as it was.
  const bitmaps = (await qmp().execute('query-block'))[0]!.inserted!['dirty-bitmaps'] ?? [];
  assert.equal(bitmaps.find((b) => b.name === full.checkpoint.name)?.recording, true);
  assert.deepEqual(
    bitmaps.filter((b) => b.name?.startsWith('zenith-point-')),
    [],
  );
  assert.equal(since.manifest.disks[0]!.readBytes, 0);
  assert.deepEqual(since.manifest.disks[0]!.chunks, full.manifest.disks[0]!.chunks);
  // Nothing of the reads is left in QEMU: no overlay node, no job, no export; no overlay file.
  const nodes = (await qmp().execute('query-block')).map((b) => b.inserted?.['node-name']);
  assert.equal(nodes.length, 1);
  assert.deepEqual(await qmp().execute('query-block-jobs'), []);
  assert.deepEqual(
    readdirSync(join(base, 'state', 'vms', vmId)).filter((f) => f.startsWith('fleece')),
    [],
  );
  await driver.facets.diskStreams.releaseCheckpoint(vmId, 'disk0', checkpoint!);
  await driver.facets.diskStreams.releaseCheckpoint(vmId, 'disk0', full.checkpoint);

  // QEMU killed: the bitmap it had not saved is in use in the image, and a read from it is refused.
  const pid = (await vmNow()).facts['qemu.pid'] as number;
  process.kill(pid, 'SIGKILL');
  await until('QEMU gone', async () => (processAlive(pid) ? undefined : true));
  await until('the VM stopped', async () =>
    (await vmNow()).powerState === 'stopped' ? true : undefined,
  );
  await assert.rejects(
    driver.facets.diskStreams.openReader(
      vmId,
      'disk0',
      { changedSince: since.checkpoint },
      context,
    ),
    (error: unknown) =>
      isZenithError(error) &&
      error.code === 'ZEN_INVALID_STATE' &&
      error.details.checkpoint === 'lost',
  );
  const again = await backUp({});
  assert.equal(again.manifest.disks[0]!.scope, 'full');
  assert.equal(sha256(await restoredBytes(again.manifest)), sha256(atStart));
});

test("removing images: a leftover goes with its empty directory; a VM's disk, and a file that backs another host's VM's disk, are refused", async () => {
  const facet = driver.facets.diskStreams;
  const refused = (error: unknown) => isZenithError(error) && error.code === 'ZEN_DISK_IN_USE';
  await assert.rejects(facet.removeImages([{ path: diskFile }]), refused);
  // An image a VM on another host sharing the storage reads through (its disk's backing).
  const baseImage = join(base, 'disks', 'shared-base.qcow2');
  const overlay = join(base, 'disks', 'elsewhere', 'disk0.qcow2');
  mkdirSync(dirname(overlay), { recursive: true });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', baseImage, '16M']);
  execFileSync('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-F',
    'qcow2',
    '-b',
    baseImage,
    overlay,
  ]);
  new DiskClaims([join(base, 'disks')]).claim(
    overlay,
    { uuid: 'a-vm-of-another-host', name: 'elsewhere' },
    [realpathSync(baseImage)],
  );
  await assert.rejects(facet.removeImages([{ path: baseImage }]), refused);
  assert.ok(existsSync(baseImage));
  // What a cut-off restore left: removed, and its directory with it.
  const leftover = join(base, 'disks', 'cut-off-restore', 'disk0.qcow2');
  mkdirSync(dirname(leftover), { recursive: true });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', leftover, '16M']);
  await facet.removeImages([{ path: leftover }]);
  assert.equal(existsSync(dirname(leftover)), false);
});
