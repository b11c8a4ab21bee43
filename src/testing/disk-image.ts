/** What tests check of a disk image: its bytes as the guest sees them, through qemu-img. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** SHA-256 of the image's bytes as the guest sees them (-U: beside a running QEMU too). */
export function guestBytesHash(image: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-image-hash-'));
  try {
    const raw = join(dir, 'raw');
    execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', image, raw]);
    return createHash('sha256').update(readFileSync(raw)).digest('hex');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
