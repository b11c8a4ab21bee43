import { writeRealisticDisk } from './disk-content.js';
import { readImage, writeImage } from '../src/hypervisors/qemu/nbd-disk-stream.js';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { BackupRepository } from '../src/services/backup/repository/repository.js';
import { restoreDisk, takeBackup } from '../src/services/backup/disk-backup.js';
const MiB = 1 << 20; const size = 1024 * MiB;
const repo = await BackupRepository.create('/tmp/prof/repo-' + Date.now());
let t = performance.now();
const m = await takeBackup(repo, { vm: { id: 'v', name: 'v', uuid: null } }, [{ diskId: 'd', open: () => readImage('/tmp/prof/disk.qcow2') }]);
console.log('backup', (performance.now() - t).toFixed(0));
for (const k of [1, 2]) {
  rmSync('/tmp/prof/out.qcow2', { force: true });
  const w = await writeImage('/tmp/prof/out.qcow2', size);
  let t = performance.now();
  await restoreDisk(repo, m.disks[0]!, w);
  const a = performance.now() - t; t = performance.now();
  await w.finish();
  console.log('restoreDisk', a.toFixed(0), 'finish', (performance.now() - t).toFixed(0));
}
t = performance.now();
execFileSync('qemu-img', ['convert', '-O', 'qcow2', '/tmp/prof/disk.qcow2', '/tmp/prof/copy.qcow2']); execFileSync('sync', ['/tmp/prof/copy.qcow2']);
console.log('convert+sync', (performance.now() - t).toFixed(0), 'data', m.disks[0]!.readBytes / MiB);
