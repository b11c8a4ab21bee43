/**
 * Counters of a running QEMU VM, read the way the host sees them: CPU time
 * and resident memory of its QEMU process from /proc, disk traffic from
 * QMP's block statistics, network traffic from the taps of its bridged NICs
 * (tap-devices.ts). User-mode networking (slirp) runs inside QEMU and keeps
 * no counters anyone can read (QMP has no query for them, and its packets
 * leave through QEMU's own sockets, mixed with everything else QEMU does):
 * a VM with only user-mode NICs reports null network bytes, and a VM with
 * both kinds counts only its bridged NICs.
 */
import { readFile } from 'node:fs/promises';
import type { VmMetrics } from '../driver.js';
import type { QemuVm } from './qemu-vm.js';
import { guestTraffic } from './tap-devices.js';

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

/**
 * Null when the VM's QEMU is not running; ZEN_INVALID_STATE when it has a process but no QMP
 * connection (starting, or just gone). The reads are awaited one by one: reads started together
 * leave the others unwatched when one fails at once (vm.qmp() throwing while they are made), and
 * an unhandled rejection ends the process. Each takes microseconds.
 */
export async function readVmMetrics(vm: QemuVm, now: number): Promise<VmMetrics | null> {
  const pid = vm.pid;
  if (pid === null) return null;
  const blocks = await vm.qmp().execute('query-blockstats');
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const disks = blocks.filter((b) => b.device?.startsWith('disk'));
  const taps = vm.tapNames;
  const network = taps.length > 0 ? guestTraffic(taps) : null;
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
    // From the guest's point of view: received is what came in to the guest.
    netRxBytes: network?.receivedBytes ?? null,
    netTxBytes: network?.sentBytes ?? null,
  };
}
