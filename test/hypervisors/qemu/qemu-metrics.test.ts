import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { systemClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';
import { readVmMetrics } from '../../../src/hypervisors/qemu/qemu-metrics.js';
import { QemuVm } from '../../../src/hypervisors/qemu/qemu-vm.js';

test('metrics of a VM with a process but no QMP connection are refused with a code, and no read is left failing unwatched', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-qemu-metrics-'));
  const vm = new QemuVm(
    {
      id: 'qtest',
      spec: {
        name: 'half-started',
        cpus: 1,
        memoryMiB: 128,
        disks: [],
        boot: { kind: 'disk' },
        nics: [],
        vnc: false,
        accelerator: 'tcg',
      },
      createdAt: 0,
      desired: 'running',
    },
    dir,
    {
      qmpSocket: join(dir, 'qmp'),
      serialSocket: join(dir, 'serial'),
      vncSocket: join(dir, 'vnc'),
      agentSocket: join(dir, 'qga'),
      pidFile: join(dir, 'pid'),
    },
    {
      binary: 'qemu-system-x86_64',
      hostKey: 'test',
      clock: systemClock,
      logger: silentLogger,
      accelerator: () => 'tcg',
      onChange: () => undefined,
    },
  );
  // A process that has exited: reads of its /proc files fail.
  vm.pid = spawnSync('true').pid!;
  const unhandled: unknown[] = [];
  const collect = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', collect);
  try {
    await assert.rejects(
      readVmMetrics(vm, 0),
      (e) => isZenithError(e) && e.code === 'ZEN_INVALID_STATE',
    );
    // Reads of the same missing file, one after another: any read started before them has
    // failed, and its rejection been reported, by the time they are done.
    for (let i = 0; i < 8; i++)
      await readFile(`/proc/${vm.pid}/stat`, 'utf8').catch(() => undefined);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, [], 'no promise was left to fail unhandled');
  } finally {
    process.off('unhandledRejection', collect);
    rmSync(dir, { recursive: true, force: true });
  }
});
