/**
 * Image files as a host's storage holds them, for tests and benchmarks of the image library: made
 * by the real tools (qemu-img, genisoimage), and a qcow2 header damaged on purpose.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** `qemu-img create` of an empty disk image. */
export function makeImage(path: string, format: 'qcow2' | 'raw' | 'vmdk', size: string): void {
  execFileSync('qemu-img', ['create', '-q', '-f', format, path, size], { stdio: 'ignore' });
}

/** A qcow2 overlay of a qcow2 image (`backing` as the header names it: absolute, or relative). */
export function makeOverlay(path: string, backing: string): void {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', 'qcow2', path], {
    stdio: 'ignore',
  });
}

/** A qcow2 image whose header says a version no QEMU reads (`version` at byte 4). */
export function makeDamagedQcow2(path: string, version = 99): void {
  makeImage(path, 'qcow2', '1G');
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, Buffer.from([0, 0, 0, version]), 0, 4, 4);
  } finally {
    closeSync(fd);
  }
}

/** An ISO 9660 image (genisoimage) labelled `label`, of a directory made at `contentDir` with one file. */
export function makeIso(path: string, label: string, contentDir: string): void {
  mkdirSync(contentDir, { recursive: true });
  writeFileSync(join(contentDir, 'README'), 'install media\n');
  execFileSync('genisoimage', ['-quiet', '-V', label, '-o', path, contentDir]);
}
