/**
 * Replica chains on a QEMU host's storage: an overlay written for the extents that changed reads as
 * its backing image everywhere else (checked by the real qemu-img), and folding the oldest overlay
 * into the base keeps every later point reading exactly as before.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import { writeImage } from '../../../src/hypervisors/qemu/image-writer.js';
import { commitImage, pointBackingAt } from '../../../src/hypervisors/qemu/qemu-img.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const dir = mkdtempSync(join(tmpdir(), 'zenith-overlays-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const run = (command: string, ...args: string[]) =>
  execFileSync(command, args, { encoding: 'utf8', maxBuffer: 64 * MiB });
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The guest's bytes of an image (its whole chain), as qemu-img converts them. */
function guestBytes(file: string): Buffer {
  const raw = `${file}.raw`;
  run('qemu-img', 'convert', '-O', 'raw', file, raw);
  const bytes = readFileSync(raw);
  rmSync(raw);
  return bytes;
}

function checkClean(file: string): void {
  const check = JSON.parse(run('qemu-img', 'check', '--output=json', file)) as {
    'check-errors': number;
    corruptions?: number;
    leaks?: number;
  };
  assert.deepEqual([check['check-errors'], check.corruptions ?? 0, check.leaks ?? 0], [0, 0, 0]);
}

const fill = (length: number, byte: number) => Buffer.alloc(length, byte);

/** Writes the changes (offset → byte) as a new point over `backing` (null: a first, full image). */
async function point(
  name: string,
  capacity: number,
  backing: string | null,
  changes: Array<[offset: number, length: number, byte: number]>,
): Promise<string> {
  const file = join(dir, name);
  const writer = await writeImage(file, capacity, {
    dataExtents: changes.map(([offset, length]) => [offset, length] as const),
    ...(backing ? { backing: { file: backing, format: 'qcow2' as const } } : {}),
  });
  assert.equal(writer.zeroed, backing === null, 'an overlay does not read as zeroes');
  for (const [offset, length, byte] of changes)
    if (byte === 0) await writer.writeZeroes(offset, length);
    else await writer.write(offset, fill(length, byte));
  await writer.finish();
  checkClean(file);
  return file;
}

test('overlays read as their backing image except where they were written, and fold into it', async () => {
  const capacity = 4 * MiB;
  const base = await point('base.qcow2', capacity, null, [
    [0, 1 * MiB, 0x11],
    [2 * MiB, 1 * MiB, 0x22],
  ]);
  const expected = Buffer.alloc(capacity);
  expected.fill(0x11, 0, 1 * MiB);
  expected.fill(0x22, 2 * MiB, 3 * MiB);
  assert.equal(sha(guestBytes(base)), sha(expected));

  // Point 1 changes 64 KiB inside the first run and zeroes 128 KiB of the second.
  const p1 = await point('p1.qcow2', capacity, base, [
    [64 * KiB, 64 * KiB, 0x33],
    [2 * MiB + 128 * KiB, 128 * KiB, 0],
  ]);
  const info = JSON.parse(run('qemu-img', 'info', '--output=json', p1)) as {
    'backing-filename': string;
    'backing-filename-format': string;
  };
  assert.deepEqual([info['backing-filename'], info['backing-filename-format']], [base, 'qcow2']);
  const atP1 = Buffer.from(expected);
  atP1.fill(0x33, 64 * KiB, 128 * KiB);
  atP1.fill(0, 2 * MiB + 128 * KiB, 2 * MiB + 256 * KiB);
  assert.equal(sha(guestBytes(p1)), sha(atP1), 'point 1 reads as the base with its changes');
  assert.equal(sha(guestBytes(base)), sha(expected), 'the base is untouched');

  // Point 2 writes where nothing was before: 4 KiB-aligned (a smaller cluster than 64 KiB).
  const p2 = await point('p2.qcow2', capacity, p1, [[3 * MiB + 4 * KiB, 8 * KiB, 0x44]]);
  const atP2 = Buffer.from(atP1);
  atP2.fill(0x44, 3 * MiB + 4 * KiB, 3 * MiB + 12 * KiB);
  assert.equal(sha(guestBytes(p2)), sha(atP2));

  // An overlay's zeroes outside its extents would show the backing image: refused.
  const refused = await writeImage(join(dir, 'p3.qcow2'), capacity, {
    dataExtents: [[0, 64 * KiB]],
    backing: { file: p2, format: 'qcow2' },
  });
  await assert.rejects(
    () => refused.writeZeroes(1 * MiB, 64 * KiB),
    (error) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
  );
  await refused.abort();
  assert.ok(
    !existsSync(join(dir, 'p3.qcow2')) && !existsSync(join(dir, 'p3.qcow2.zenith-partial')),
  );

  // The oldest point (the base) goes: point 1 folds into it, point 2 reads through it directly.
  await commitImage(p1);
  await pointBackingAt(p2, base);
  rmSync(p1);
  checkClean(base);
  checkClean(p2);
  assert.equal(sha(guestBytes(base)), sha(atP1), 'the base now reads as point 1 did');
  assert.equal(sha(guestBytes(p2)), sha(atP2), 'point 2 reads exactly as before');
});

test('an overlay needs its data extents, and a backing name that fits the header', async () => {
  await assert.rejects(
    () => writeImage(join(dir, 'x.qcow2'), MiB, { backing: { file: '/b', format: 'qcow2' } }),
    (error) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
  );
  await assert.rejects(
    () =>
      writeImage(join(dir, 'y.qcow2'), MiB, {
        dataExtents: [[0, 512]],
        backing: { file: `/${'b'.repeat(2000)}`, format: 'qcow2' },
      }),
    (error) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
  );
});
