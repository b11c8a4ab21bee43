/**
 * Counters of a running QEMU VM, read the way the host sees them: CPU time
 * and resident memory of its QEMU process from /proc, disk traffic from
 * QMP's block statistics. User-mode networking (slirp) keeps no counters
 * anyone can read, so network bytes are null there.
 */
import { readFile } from 'node:fs/promises';
import type { VmMetrics } from '../driver.js';
import type { QemuVm } from './qemu-vm.js';

/** Linux reports process CPU time in USER_HZ ticks, which is 100 on every architecture. */
const msPerTick = 10;

/** Utime + stime of a process, in ms (fields 14 and 15 of /proc/PID/stat, counted after the command name). */
export function cpuTimeMsFromStat(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) * msPerTick;
}

/** VmRSS of /proc/PID/status, in bytes. */
export function residentBytesFromStatus(status: string): number {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

export async function readVmMetrics(vm: QemuVm, now: number): Promise<VmMetrics | null> {
  const pid = vm.pid;
  if (pid === null) return null;
  const [stat, status, blocks] = await Promise.all([
    readFile(`/proc/${pid}/stat`, 'utf8'),
    readFile(`/proc/${pid}/status`, 'utf8'),
    vm.qmp().execute('query-blockstats'),
  ]);
  const disks = blocks.filter((b) => b.device?.startsWith('disk'));
  const sum = (key: 'rd_bytes' | 'wr_bytes' | 'rd_operations' | 'wr_operations') =>
    disks.reduce((total, d) => total + (d.stats[key] ?? 0), 0);
  return {
    sampledAt: now,
    cpuTimeMs: cpuTimeMsFromStat(stat),
    memoryUsedBytes: residentBytesFromStatus(status),
    memoryConfiguredBytes: vm.record.spec.memoryMiB * 1048576,
    diskReadBytes: sum('rd_bytes'),
    diskWriteBytes: sum('wr_bytes'),
    diskReadOps: sum('rd_operations'),
    diskWriteOps: sum('wr_operations'),
    netRxBytes: null,
    netTxBytes: null,
  };
}
