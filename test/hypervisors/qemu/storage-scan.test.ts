/**
 * The QEMU host's storage scan over real images: qemu-img made every disk format (and a qcow2
 * whose header was then damaged), genisoimage an ISO; links into and out of the roots, a link
 * loop, a FIFO, a root that is no directory, a deep tree and a wide one.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../../../src/core/clock.js';
import { silentLogger } from '../../../src/core/logger.js';
import { QemuDriver } from '../../../src/hypervisors/qemu/qemu-driver.js';
import { scanStorageRoots } from '../../../src/hypervisors/qemu/storage-scanner.js';
import { DiskClaims } from '../../../src/hypervisors/qemu/disk-claims.js';
import {
  makeDamagedQcow2,
  makeImage,
  makeIso,
  makeOverlay,
} from '../../../src/testing/image-files.js';

const base = mkdtempSync(join(tmpdir(), 'zenith-scan-'));
const root = join(base, 'images');
const second = join(base, 'more');
const outside = join(base, 'outside');
const context = { signal: new AbortController().signal, progress: () => undefined };
let driver: QemuDriver;

function qemuImg(...args: string[]): void {
  execFileSync('qemu-img', args, { stdio: 'ignore' });
}

before(async () => {
  for (const dir of [root, second, outside, join(root, 'iso'), join(root, 'boot')])
    mkdirSync(dir, { recursive: true });
  makeImage(join(root, 'base.qcow2'), 'qcow2', '1G');
  makeOverlay(join(root, 'overlay.qcow2'), 'base.qcow2');
  makeImage(join(root, 'blank.img'), 'raw', '64M');
  makeImage(join(root, 'disk.vmdk'), 'vmdk', '2G');
  makeDamagedQcow2(join(root, 'broken.qcow2'));
  makeIso(join(root, 'iso', 'media.iso'), 'ZENITH-MEDIA', join(base, 'iso-content'));
  // A bzImage's boot header ("HdrS" at 0x202) and a gzip initramfs.
  const kernel = Buffer.alloc(8192);
  kernel.write('HdrS', 0x202, 'latin1');
  writeFileSync(join(root, 'boot', 'vmlinuz-6.1'), kernel);
  writeFileSync(join(root, 'boot', 'initrd.img-6.1'), Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]));
  writeFileSync(join(root, 'notes.txt'), 'not an image');
  // A FIFO named like an image, and a link to it: reading either would block the scan for ever.
  execFileSync('mkfifo', [join(root, 'pipe.img')]);
  symlinkSync(join(root, 'pipe.img'), join(root, 'pipe-link.img'));
  // Links: one into the root (followed), one out of it (not), a loop, a directory link to the root.
  makeImage(join(outside, 'secret.qcow2'), 'qcow2', '1G');
  symlinkSync(join(root, 'blank.img'), join(root, 'alias.img'));
  symlinkSync(join(outside, 'secret.qcow2'), join(root, 'escape.qcow2'));
  symlinkSync(join(root, 'loop-b'), join(root, 'loop-a'));
  symlinkSync(join(root, 'loop-a'), join(root, 'loop-b'));
  symlinkSync(root, join(root, 'iso', 'up'));
  symlinkSync(outside, join(root, 'outside-dir'));
  // A tree deeper than the scan descends.
  let deep = join(root, 'deep');
  for (let level = 0; level < 12; level++) deep = join(deep, `d${level}`);
  mkdirSync(deep, { recursive: true });
  makeImage(join(deep, 'lost.qcow2'), 'qcow2', '1G');
  driver = new QemuDriver({
    stateDir: join(base, 'state'),
    storageRoots: [root, second],
    accelerator: 'tcg',
    kvmUsable: false,
    hostName: 'scanner',
    clock: systemClock,
    logger: silentLogger,
  });
  await driver.connect();
});
after(async () => {
  await driver.close();
  rmSync(base, { recursive: true, force: true });
});

test('a scan finds every image by its header, with its format, sizes and backing file', async () => {
  const scan = await driver.facets.storageScan.scanStorage(context);
  const byName = new Map(scan.images.map((image) => [image.path.slice(root.length + 1), image]));
  assert.deepEqual(
    [...byName.keys()],
    [
      'alias.img',
      'base.qcow2',
      'blank.img',
      'boot/initrd.img-6.1',
      'boot/vmlinuz-6.1',
      'broken.qcow2',
      'disk.vmdk',
      'iso/media.iso',
      'overlay.qcow2',
    ],
  );
  const base = byName.get('base.qcow2')!;
  assert.equal(base.format, 'qcow2');
  assert.equal(base.kind, 'disk');
  assert.equal(base.virtualBytes, 1024 ** 3);
  assert.ok(base.allocatedBytes < 1024 ** 2, 'a new qcow2 takes almost nothing');
  assert.equal(byName.get('overlay.qcow2')!.backingFile, join(root, 'base.qcow2'));
  const raw = byName.get('blank.img')!;
  assert.equal(raw.format, 'raw');
  assert.equal(raw.virtualBytes, 64 * 1024 ** 2);
  assert.equal(byName.get('alias.img')!.linkTarget, join(root, 'blank.img'));
  assert.equal(byName.get('disk.vmdk')!.format, 'vmdk');
  assert.equal(byName.get('disk.vmdk')!.virtualBytes, 2 * 1024 ** 3);
  const iso = byName.get('iso/media.iso')!;
  assert.equal(iso.kind, 'iso');
  assert.equal(iso.label, 'ZENITH-MEDIA');
  assert.equal(iso.virtualBytes, iso.fileBytes);
  assert.equal(byName.get('boot/vmlinuz-6.1')!.kind, 'kernel');
  assert.equal(byName.get('boot/initrd.img-6.1')!.kind, 'initrd');
  const broken = byName.get('broken.qcow2')!;
  assert.match(broken.problem ?? '', /qcow2 version 99/);
  // qemu-img agrees that it is unreadable.
  assert.throws(() => qemuImg('info', join(root, 'broken.qcow2')));
  assert.deepEqual(scan.skipped, {
    linksOutside: 2,
    brokenLinks: 2,
    tooDeep: 1,
    unreadable: 0,
    notImages: 1,
  });
  assert.deepEqual(
    scan.roots.map((r) => r.error),
    [null, null],
  );
  assert.equal(scan.truncated, false);
});

test('a disk a VM claimed names its owner; the VMs defined here are listed', async () => {
  const claims = new DiskClaims([root]);
  claims.claim(join(root, 'disk.vmdk'), {
    uuid: 'c0ffee00-0000-4000-8000-000000000001',
    name: 'gone',
  });
  const scan = await driver.facets.storageScan.scanStorage(context);
  const disk = scan.images.find((image) => image.path.endsWith('disk.vmdk'))!;
  assert.deepEqual(disk.owner, { vmUuid: 'c0ffee00-0000-4000-8000-000000000001', vmName: 'gone' });
  assert.deepEqual(scan.definedVmUuids, []);
});

test('a root that cannot be read is a coded error beside the others', async () => {
  writeFileSync(join(base, 'a-file'), 'x');
  const scan = await scanStorageRoots([join(base, 'a-file'), join(base, 'absent'), root], {
    clock: systemClock,
    context,
    owners: () => null,
  });
  assert.equal(scan.roots[0]!.error?.code, 'ZEN_STORAGE_ROOT_UNREADABLE');
  assert.equal(scan.roots[1]!.error?.code, 'ZEN_STORAGE_ROOT_UNREADABLE');
  assert.equal(scan.roots[2]!.error, null);
  assert.ok(scan.images.length > 0);
});

test('a root of 10,000 files is scanned in seconds; a file limit truncates and says so', async () => {
  const wide = join(base, 'wide');
  mkdirSync(wide);
  const header = Buffer.alloc(512);
  header.writeUInt32BE(0x514649fb, 0);
  header.writeUInt32BE(3, 4);
  header.writeUInt32BE(16, 20);
  header.writeBigUInt64BE(1n << 30n, 24);
  for (let i = 0; i < 10_000; i++)
    writeFileSync(join(wide, `disk-${String(i).padStart(5, '0')}.qcow2`), header);
  symlinkSync(wide, join(wide, 'self'));
  const started = performance.now();
  const scan = await scanStorageRoots([wide], { clock: systemClock, context, owners: () => null });
  const seconds = (performance.now() - started) / 1000;
  assert.equal(scan.images.length, 10_000);
  assert.ok(seconds < 10, `took ${seconds.toFixed(1)} s`);
  const capped = await scanStorageRoots([wide], {
    clock: systemClock,
    context,
    owners: () => null,
    limits: { maxFiles: 100 },
  });
  assert.equal(capped.truncated, true);
  assert.equal(capped.images.length, 100);
});
