/**
 * The storage scan of the image library: a root of 5,000 image files (qcow2, qcow2 overlays, VMDK,
 * sparse raw, ISO; made once with qemu-img and genisoimage, then copied) in 50 directories, scanned
 * by reading headers in-process (what the QEMU driver and agents do), against `qemu-img info` of a
 * sample of the same files, one process per file, extrapolated to the whole root. Prints the
 * time of each scan, the peak resident memory during the scan and the size of its result as the
 * agent channel carries it.
 *
 *   node --import tsx bench/image-scan.ts [--files 5000] [--runs 3] [--sample 200]
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { systemClock } from '../src/core/clock.js';
import { scanStorageRoots } from '../src/hypervisors/qemu/storage-scanner.js';
import { makeImage, makeIso, makeOverlay } from '../src/testing/image-files.js';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '5000' },
    runs: { type: 'string', default: '3' },
    sample: { type: 'string', default: '200' },
  },
});
const total = Number(values.files);
const runs = Number(values.runs);
const sampleSize = Math.min(Number(values.sample), total);
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

const base = mkdtempSync(join(tmpdir(), 'zenith-bench-scan-'));
const root = join(base, 'root');
const templates = join(base, 'templates');
mkdirSync(templates);
makeImage(join(templates, 'base.qcow2'), 'qcow2', '10G');
makeOverlay(join(templates, 'overlay.qcow2'), join(templates, 'base.qcow2'));
makeImage(join(templates, 'disk.vmdk'), 'vmdk', '4G');
makeIso(join(templates, 'media.iso'), 'BENCH', join(base, 'media'));
const kinds = ['qcow2', 'overlay', 'vmdk', 'raw', 'iso'] as const;
const files: string[] = [];
const madeAt = performance.now();
for (let i = 0; i < total; i++) {
  const dir = join(root, `dir-${String(i % 50).padStart(2, '0')}`);
  if (i < 50) mkdirSync(dir, { recursive: true });
  const kind = kinds[i % kinds.length]!;
  const name = `image-${String(i).padStart(5, '0')}`;
  let file: string;
  switch (kind) {
    case 'qcow2':
      file = join(dir, `${name}.qcow2`);
      copyFileSync(join(templates, 'base.qcow2'), file);
      break;
    case 'overlay':
      file = join(dir, `${name}-overlay.qcow2`);
      copyFileSync(join(templates, 'overlay.qcow2'), file);
      break;
    case 'vmdk':
      file = join(dir, `${name}.vmdk`);
      copyFileSync(join(templates, 'disk.vmdk'), file);
      break;
    case 'raw':
      file = join(dir, `${name}.img`);
      writeFileSync(file, '');
      truncateSync(file, 1 << 30);
      break;
    case 'iso':
      file = join(dir, `${name}.iso`);
      copyFileSync(join(templates, 'media.iso'), file);
      break;
  }
  files.push(file);
}
console.log(
  `made ${total} image files in 50 directories in ${((performance.now() - madeAt) / 1000).toFixed(1)} s (load ${readFileSync('/proc/loadavg', 'utf8').trim()})`,
);

const context = { signal: new AbortController().signal, progress: () => undefined };
const times: number[] = [];
let peakRss = 0;
let found = 0;
let resultBytes = 0;
const rssBefore = process.memoryUsage().rss;
for (let r = 0; r < runs; r++) {
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 5);
  const started = performance.now();
  const scan = await scanStorageRoots([root], { clock: systemClock, context, owners: () => null });
  times.push(performance.now() - started);
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  found = scan.images.length;
  resultBytes = JSON.stringify(scan.images).length;
}
times.sort((a, b) => a - b);
console.log(`\n[in-process header reads] ${found} images found of ${total} files`);
console.log(
  `  scan: median ${times[Math.floor(times.length / 2)]!.toFixed(0)} ms, fastest ${times[0]!.toFixed(0)} ms, slowest ${times.at(-1)!.toFixed(0)} ms (${runs} runs)`,
);
console.log(
  `  memory: resident ${mib(rssBefore)} before, peak ${mib(peakRss)} during (+${mib(peakRss - rssBefore)})`,
);
console.log(
  `  result: ${mib(resultBytes)} as JSON (${Math.round(resultBytes / found)} bytes per image; ${Math.ceil(resultBytes / (512 * 1024))} agent-channel pages of 512 KiB)`,
);

// qemu-img info on a sample, one process per file: sequentially, and two at a time (2 cores here).
const sample = files
  .filter((_, i) => i % Math.floor(total / sampleSize) === 0)
  .slice(0, sampleSize);
let started = performance.now();
for (const file of sample) await run('qemu-img', ['info', '-U', '--output=json', file]);
const sequential = performance.now() - started;
started = performance.now();
let next = 0;
await Promise.all(
  [0, 1].map(async () => {
    while (next < sample.length)
      await run('qemu-img', ['info', '-U', '--output=json', sample[next++]!]);
  }),
);
const parallel = performance.now() - started;
console.log(`\n[qemu-img info, one process per file] ${sample.length} files sampled`);
console.log(
  `  sequential: ${(sequential / sample.length).toFixed(1)} ms per file → ${(((sequential / sample.length) * total) / 1000).toFixed(1)} s for ${total}`,
);
console.log(
  `  two at a time: ${(parallel / sample.length).toFixed(1)} ms per file → ${(((parallel / sample.length) * total) / 1000).toFixed(1)} s for ${total}`,
);
console.log(`\nload after: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
rmSync(base, { recursive: true, force: true });
