import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  Qcow2LayoutError,
  Qcow2Plan,
  type Extent,
} from '../../../src/protocols/qcow2/qcow2-layout.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const dir = mkdtempSync(join(tmpdir(), 'zenith-qcow2-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const run = (command: string, ...args: string[]) =>
  execFileSync(command, args, { encoding: 'utf8', maxBuffer: 64 * MiB });
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A byte that tells where it is: guest offset and a salt. */
const patternAt = (offset: number, length: number, salt: number) => {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++)
    bytes[i] = ((offset + i) * 31 + salt + ((offset + i) >> 12)) & 0xff;
  return bytes;
};

/**
 * Writes an image by the plan (metadata, then each extent's bytes where `fileRanges` puts them,
 * in an order of the caller's), and checks it with the real qemu-img: no errors, no leaks, the
 * guest's bytes exactly the extents' pattern and zeroes elsewhere.
 */
function writeAndCheck(name: string, capacity: number, extents: Extent[], reverse = false) {
  const plan = Qcow2Plan.of(capacity, extents);
  const file = join(dir, `${name}.qcow2`);
  const fd = openSync(file, 'w');
  let at = 0;
  for (const part of plan.metadata()) {
    writeSync(fd, part, 0, part.length, at);
    at += part.length;
  }
  assert.equal(
    at,
    plan.metadataClusters * plan.clusterSize,
    `${name}: metadata fills its clusters`,
  );
  const expected = Buffer.alloc(capacity);
  const order = reverse ? [...extents].reverse() : extents;
  for (const [offset, length] of order) {
    const bytes = patternAt(offset, length, 7);
    bytes.copy(expected, offset);
    for (const piece of plan.fileRanges(offset, length))
      writeSync(fd, bytes, piece.from, piece.length, piece.fileOffset);
  }
  closeSync(fd);
  // A file shorter than the layout (a last extent ending mid-cluster) is padded as a stream pads.
  execFileSync('truncate', ['-s', String(plan.sizeBytes), file]);
  const check = JSON.parse(run('qemu-img', 'check', '--output=json', file)) as {
    'check-errors': number;
    corruptions?: number;
    leaks?: number;
  };
  assert.deepEqual(
    [check['check-errors'], check.corruptions ?? 0, check.leaks ?? 0],
    [0, 0, 0],
    `${name}: qemu-img check finds nothing wrong`,
  );
  const info = JSON.parse(run('qemu-img', 'info', '--output=json', file)) as {
    'virtual-size': number;
    'cluster-size': number;
    format: string;
  };
  assert.deepEqual(
    [info.format, info['virtual-size'], info['cluster-size']],
    ['qcow2', capacity, plan.clusterSize],
  );
  const raw = join(dir, `${name}.raw`);
  run('qemu-img', 'convert', '-O', 'raw', file, raw);
  assert.equal(
    sha256(readFileSync(raw)),
    sha256(expected),
    `${name}: the guest reads what was written`,
  );
  const map = JSON.parse(run('qemu-img', 'map', '--output=json', file)) as Array<{
    start: number;
    length: number;
    data: boolean;
  }>;
  const allocated = map.filter((m) => m.data).reduce((sum, m) => sum + m.length, 0);
  const wanted = extents.reduce(
    (sum, [offset, length]) =>
      sum +
      Math.min(capacity, Math.ceil((offset + length) / plan.clusterSize) * plan.clusterSize) -
      offset,
    0,
  );
  assert.equal(allocated, wanted, `${name}: only the extents hold data`);
  return plan;
}

test('images laid out up front are what qemu-img reads: extents anywhere, in any write order', () => {
  const none = writeAndCheck('empty', 8 * MiB, []);
  assert.equal(none.dataClusters, 0);
  writeAndCheck('one', 8 * MiB, [[MiB, 2 * MiB]]);
  // Written back to front: the place of each byte is fixed by the layout, not by the order.
  writeAndCheck(
    'scattered',
    16 * MiB,
    [
      [0, 64 * KiB],
      [3 * MiB, 4 * MiB],
      [15 * MiB, MiB],
    ],
    true,
  );
  // A disk whose size is no whole number of clusters, its last extent ending with it.
  const odd = writeAndCheck('odd-end', 3 * MiB + 4 * KiB + 512, [
    [0, 128 * KiB],
    [3 * MiB, 4 * KiB + 512],
  ]);
  assert.equal(odd.clusterSize, 64 * KiB, 'the end of the disk does not shrink the clusters');
});

test('small clusters when extents ask for them: L2 tables and refcount blocks past one cluster', () => {
  // 512-byte clusters: an L2 table maps 32 KiB and a refcount block counts 256 clusters, a table
  // cluster lists 64 blocks: 12 MiB of data needs several of each.
  const extents: Extent[] = [
    [512, 1536],
    [40 * KiB, 12 * MiB],
    [20 * MiB - 512, 512],
  ];
  const plan = writeAndCheck('small-clusters', 20 * MiB, extents);
  assert.equal(plan.clusterSize, 512);
});

test('neighbouring extents are joined; a write across them maps to each', () => {
  const plan = Qcow2Plan.of(4 * MiB, [
    [2 * MiB, MiB],
    [MiB, MiB],
  ]);
  assert.deepEqual(
    plan.extents.map((e) => [e.offset, e.length]),
    [[MiB, 2 * MiB]],
  );
  const [piece] = plan.fileRanges(MiB + 4096, MiB);
  assert.deepEqual(piece, {
    fileOffset: plan.metadataClusters * plan.clusterSize + 4096,
    length: MiB,
    from: 0,
  });
  const apart = Qcow2Plan.of(4 * MiB, [
    [0, 64 * KiB],
    [MiB, 64 * KiB],
  ]);
  assert.throws(
    () => apart.fileRanges(32 * KiB, 64 * KiB),
    Qcow2LayoutError,
    'a write into a hole',
  );
  assert.throws(() => apart.fileRanges(2 * MiB, 512), Qcow2LayoutError, 'past every extent');
});

test('extents that make no image are refused with QCOW2_BAD_LAYOUT', () => {
  const refused = (capacity: number, extents: Extent[]) =>
    assert.throws(
      () => Qcow2Plan.of(capacity, extents),
      (error: unknown) => error instanceof Qcow2LayoutError && error.code === 'QCOW2_BAD_LAYOUT',
    );
  refused(MiB, [[0, 2 * MiB]]); // past the disk
  refused(MiB, [
    [0, 128 * KiB],
    [64 * KiB, 128 * KiB],
  ]); // overlapping
  refused(MiB, [[100, 512]]); // not on a 512-byte boundary
  refused(MiB, [[-512, 512]]);
  refused(0, []);
});
