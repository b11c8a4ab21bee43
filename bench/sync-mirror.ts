/**
 * What synchronous replication costs the guest: the latency of its disk writes (QEMU's own
 * device counters, `query-blockstats`: wr_total_time_ns / wr_operations over a window, and the
 * write latency histogram of `block-latency-histogram-set` for the median and p99) and the blocks
 * it writes per second, while the test guest (TCG) writes its numbered pattern without pause —
 * 4 KiB blocks, each followed by an fsync — to a 256 MiB disk, in `--rounds` rounds (default 3) of
 * `--seconds` (default 8) per configuration, the configurations taking turns:
 * 1. without a mirror;
 * 2. mirrored in write-blocking mode (TLS-PSK over NBD) to a replica daemon on 127.0.0.1;
 * 3. the same with the daemon's export in writethrough mode (each write flushed at the replica);
 * 4. to a daemon in a network namespace of its own behind a veth pair and a bridge
 *    (src/testing/physical-hosts.ts; root needed);
 * 5. through a user-space TCP proxy (src/testing/delay-proxy.ts: these kernels have no netem), first
 *    passing chunks on at once (what the proxy costs), then holding each `--delay-ms` (default 1)
 *    in each direction (2 × that per round trip).
 * Also the time each mirror took to be ready (its first pass sends the whole disk).
 *
 *   node --import tsx bench/sync-mirror.ts [--seconds 8] [--rounds 3] [--delay-ms 1]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createImage } from '../src/hypervisors/qemu/qemu-img.js';
import type { DiskWriteLatency } from '../src/hypervisors/qemu/disk-write-latency.js';
import {
  startReplicaDaemon,
  type ReplicaDaemon,
} from '../src/hypervisors/qemu/sync-mirror-target.js';
import { newPskKey } from '../src/hypervisors/qemu/tls-psk.js';
import { GuestConsole } from '../src/testing/guest-console.js';
import { guestAppend } from '../src/testing/guest-image.js';
import { startDelayProxy } from '../src/testing/delay-proxy.js';
import { startPhysicalLab, type PhysicalLab } from '../src/testing/physical-hosts.js';
import { freePort } from '../src/testing/ports.js';
import { startTcgDriver } from '../src/testing/tcg-driver.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    'delay-ms': { type: 'string', default: '1' },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const delayMs = Number(values['delay-ms']);
const MiB = 1024 * 1024;
const DISK_BYTES = 256 * MiB;
const context = { signal: new AbortController().signal, progress: () => undefined };
const dir = mkdtempSync(join(tmpdir(), 'zenith-bench-sync-mirror-'));
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const µs = 1000;
/** Histogram bin boundaries, in ns. */
const BOUNDARIES = [
  25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 600, 750, 1000, 1250, 1500, 2000, 2500, 3000,
  3500, 4000, 5000, 7500, 10_000, 20_000, 50_000, 100_000,
].map((b) => b * µs);

console.log(
  `commit ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()}, ${new Date().toISOString()}, load at start: ${load()}`,
);

const { driver, image } = await startTcgDriver(dir, 'bench');
const vm = await driver.createVm(
  {
    name: 'writer',
    cpus: 1,
    memoryBytes: 128 * MiB,
    diskBytes: DISK_BYTES,
    hostExternalId: 'bench',
    options: {
      kernel: image.kernel,
      initrd: image.initrd,
      cmdline: guestAppend({ pattern: true }),
    },
  },
  context,
);
const replicas = join(dir, 'replicas');
mkdirSync(replicas, { recursive: true });
const readyPoint = join(replicas, 'point-0.qcow2');
await createImage(readyPoint, { sizeBytes: DISK_BYTES });
let lab: PhysicalLab | undefined;

interface Window {
  writes: number;
  writeNs: number;
  flushes: number;
  flushNs: number;
  bins: number[];
  blocks: number;
  seconds: number;
  readySeconds?: number;
}
const daemons: ReplicaDaemon[] = [];
const mirrors = driver.syncMirrors;

/** The p-quantile of a histogram: the upper bound of the bin it falls in. */
function quantile(histogram: DiskWriteLatency['histogram'], q: number): string {
  if (!histogram) return 'n/a';
  const total = histogram.bins.reduce((a, b) => a + b, 0);
  let seen = 0;
  for (const [i, count] of histogram.bins.entries()) {
    seen += count;
    if (seen >= q * total) {
      const bound = histogram.boundariesNs[i];
      return bound === undefined
        ? `> ${(histogram.boundariesNs.at(-1)! / 1e6).toFixed(1)} ms`
        : `≤ ${(bound / 1e6).toFixed(2)} ms`;
    }
  }
  return 'n/a';
}

try {
  await driver.startVm(vm.externalId, context);
  const guest = await GuestConsole.unix(driver.serialSocket(vm.externalId));
  const reported = () => Math.max(0, ...guest.numbers('pattern'));
  await guest.waitForNumber('pattern', (n) => n >= 64, 0, 120_000);
  const results = new Map<string, Window[]>();

  /** One window of `seconds` with the disk as it is now (mirrored or not). */
  const measure = async (label: string, readySeconds?: number) => {
    await mirrors.trackWriteLatency(vm.externalId, 'disk0', BOUNDARIES);
    const before = await mirrors.writeLatency(vm.externalId, 'disk0');
    const blocksBefore = reported();
    const start = performance.now();
    await sleep(seconds * 1000);
    const after = await mirrors.writeLatency(vm.externalId, 'disk0');
    const window: Window = {
      writes: after.writeOperations - before.writeOperations,
      writeNs: after.writeTotalNs - before.writeTotalNs,
      flushes: after.flushOperations - before.flushOperations,
      flushNs: after.flushTotalNs - before.flushTotalNs,
      bins: after.histogram?.bins ?? [],
      blocks: reported() - blocksBefore,
      seconds: (performance.now() - start) / 1000,
      ...(readySeconds === undefined ? {} : { readySeconds }),
    };
    results.set(label, [...(results.get(label) ?? []), window]);
  };

  const mirrored = async (
    label: string,
    where: { host: string; launcher?: string[]; writethrough?: boolean; delayMs?: number },
  ) => {
    const key = { identity: 'bench', key: newPskKey() };
    const name = `${label.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}-${daemons.length}`;
    const replica = await startReplicaDaemon({
      dir: join(dir, 'daemons', name),
      base: readyPoint,
      overlay: join(replicas, `${name}.qcow2`),
      host: where.host,
      port: await freePort(),
      psk: key,
      writethrough: where.writethrough ?? false,
      ...(where.launcher ? { launcher: where.launcher } : {}),
    });
    daemons.push(replica);
    const proxy =
      where.delayMs === undefined
        ? null
        : await startDelayProxy({ host: where.host, port: replica.state.port }, where.delayMs);
    try {
      const start = performance.now();
      await mirrors.start(vm.externalId, 'disk0', {
        host: proxy ? '127.0.0.1' : where.host,
        port: proxy ? proxy.port : replica.state.port,
        psk: key,
      });
      await measure(label, (performance.now() - start) / 1000);
      await mirrors.stop(vm.externalId, 'disk0');
    } finally {
      await proxy?.close();
      await replica.stop();
    }
  };

  lab = await startPhysicalLab();
  const recovery = await lab.addHost({
    name: 'recovery',
    serverUrl: 'http://unused',
    enrollmentToken: 'unused',
    storageRoots: [],
    baseDir: dir,
  });
  const inNamespace = {
    host: recovery.address,
    launcher: ['ip', 'netns', 'exec', recovery.namespace],
  };
  // Rounds of every configuration in turn: the machine's load drifts over the run, and each
  // configuration meets it alike.
  for (let round = 0; round < rounds; round++) {
    await measure('no mirror');
    await mirrored('write-blocking mirror to 127.0.0.1', { host: '127.0.0.1' });
    await mirrored('the same, export in writethrough', { host: '127.0.0.1', writethrough: true });
    await mirrored('over a veth and a bridge to a namespace', inNamespace);
    await mirrored('through a user-space proxy, no delay', { host: '127.0.0.1', delayMs: 0 });
    await mirrored(`through the proxy, ${delayMs} ms each way`, {
      host: '127.0.0.1',
      delayMs,
    });
    console.log(`round ${round + 1} of ${rounds} done; load ${load()}`);
  }
  guest.close();
  for (const [label, windows] of results) {
    const sum = (pick: (w: Window) => number) => windows.reduce((a, w) => a + pick(w), 0);
    const bins = BOUNDARIES.map((_, i) => sum((w) => w.bins[i] ?? 0)).concat(
      sum((w) => w.bins[BOUNDARIES.length] ?? 0),
    );
    const histogram = { boundariesNs: BOUNDARIES, bins };
    const ready = windows.flatMap((w) => (w.readySeconds === undefined ? [] : [w.readySeconds]));
    console.log(
      `${label}: write mean ${(sum((w) => w.writeNs) / sum((w) => w.writes) / 1e6).toFixed(3)} ms, p50 ${quantile(histogram, 0.5)}, p99 ${quantile(histogram, 0.99)} (n=${sum((w) => w.writes)}); flush mean ${(sum((w) => w.flushNs) / sum((w) => w.flushes) / 1e6).toFixed(3)} ms; guest ${(sum((w) => w.blocks) / sum((w) => w.seconds)).toFixed(0)} blocks/s${ready.length > 0 ? `; ready after ${Math.min(...ready).toFixed(2)}–${Math.max(...ready).toFixed(2)} s` : ''}`,
    );
  }
  console.log(`load at end: ${load()}`);
} finally {
  for (const replica of daemons) await replica.stop().catch(() => undefined);
  await driver.stopVm(vm.externalId, context).catch(() => undefined);
  await driver.close();
  await lab?.close();
  rmSync(dir, { recursive: true, force: true });
}
