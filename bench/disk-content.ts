/**
 * A disk's realistic content for the backup benchmarks: 64 MiB segments of shared libraries
 * (compressible binaries), libraries, random bytes, nothing, nothing, in turn — 40 % libraries,
 * 20 % random, 40 % never written — as a raw file of `size` bytes (sparse where nothing is).
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

const MiB = 1024 * 1024;

export function writeRealisticDisk(raw: string, size: number): void {
  const libraries = readdirSync('/usr/lib/x86_64-linux-gnu')
    .map((name) => join('/usr/lib/x86_64-linux-gnu', name))
    .filter((path) => {
      try {
        return statSync(path).isFile() && /\.so/.test(path);
      } catch {
        return false;
      }
    });
  let library = 0;
  const fromLibraries = (length: number) => {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < length) {
      const bytes = readFileSync(libraries[library++ % libraries.length]!);
      parts.push(bytes.subarray(0, length - got));
      got += Math.min(bytes.length, length - got);
    }
    return Buffer.concat(parts);
  };
  const fd = openSync(raw, 'w');
  try {
    const segment = 64 * MiB;
    for (let at = 0, index = 0; at < size; at += segment, index++) {
      const length = Math.min(segment, size - at);
      const kind = ['lib', 'lib', 'random', 'zero', 'zero'][index % 5];
      if (kind === 'zero') continue;
      writeSync(fd, kind === 'lib' ? fromLibraries(length) : randomBytes(length), 0, length, at);
    }
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}
