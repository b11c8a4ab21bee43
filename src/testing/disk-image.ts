/** What tests check of a disk image: its bytes as the guest sees them (through qemu-img), and the guest's pattern in them. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PATTERN_BLOCK_BYTES } from './guest-image.js';

/** The image's bytes as the guest sees them (-U: beside a running QEMU too). */
export function guestBytes(image: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-image-bytes-'));
  try {
    const raw = join(dir, 'raw');
    execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', image, raw]);
    return readFileSync(raw);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** SHA-256 of the image's bytes as the guest sees them. */
export function guestBytesHash(image: string): string {
  return createHash('sha256').update(guestBytes(image)).digest('hex');
}

/**
 * How many blocks from the start of a disk's bytes hold the test guest's numbered pattern
 * (`guestAppend({ pattern: true })`): fails unless each of them is whole and every byte after them
 * is zero — a copy of the disk at one instant holds exactly such a prefix.
 */
export function patternPrefix(bytes: Buffer): number {
  const blocks = Math.floor(bytes.length / PATTERN_BLOCK_BYTES);
  let n = 0;
  for (; n < blocks; n++) {
    const block = bytes.subarray(n * PATTERN_BLOCK_BYTES, (n + 1) * PATTERN_BLOCK_BYTES);
    const line = Buffer.from(`zenith-pattern ${n}\n`);
    if (!block.subarray(0, line.length).equals(line)) break;
    if (!block.subarray(line.length).every((b) => b === 0))
      throw new Error(`block ${n} of the pattern is not whole`);
  }
  const rest = bytes.subarray(n * PATTERN_BLOCK_BYTES);
  const stray = rest.findIndex((b) => b !== 0);
  if (stray >= 0)
    throw new Error(
      `after a prefix of ${n} blocks, byte ${n * PATTERN_BLOCK_BYTES + stray} is not zero: not a copy of one instant`,
    );
  return n;
}
