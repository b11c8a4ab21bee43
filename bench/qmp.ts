/**
 * QMP and the test guest, against real QEMU (TCG):
 * - query-status round trip, sequential (n=1000) and 1000 in flight, through
 *   QmpClient and through a bare socket loop (what QEMU itself costs);
 * - time from spawning QEMU to the guest's `ZENITH-GUEST READY`;
 * - live migration of the 128 MiB test guest between two local QEMUs.
 *
 *   node --import tsx bench/qmp.ts [--boots 5] [--migrations 5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectQmp } from '../src/protocols/qmp/index.js';
import { ensureGuestImage, GUEST_READY_LINE } from '../src/testing/guest-image.js';
import { freePort } from '../src/testing/ports.js';
import { startTestQemu, waitForSerial } from '../src/testing/qemu.js';

const { values } = parseArgs({
  options: {
    boots: { type: 'string', default: '5' },
    migrations: { type: 'string', default: '5' },
  },
});
const dir = mkdtempSync(join(tmpdir(), 'zenith-bench-qmp-'));

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
const summary = (samples: number[], unit: string, digits = 0) => {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  const f = (n: number) => n.toFixed(digits);
  return `mean ${f(mean)} ${unit}, p50 ${f(quantile(sorted, 0.5))}, p99 ${f(quantile(sorted, 0.99))}, min ${f(sorted[0] ?? NaN)}, max ${f(sorted.at(-1) ?? NaN)} (n=${samples.length})`;
};

async function roundTrips(): Promise<void> {
  const socket = join(dir, 'rtt.sock');
  const qemu = await startTestQemu({ qmpSocket: socket, guest: false });
  try {
    const client = await connectQmp(socket);
    for (let i = 0; i < 100; i++) await client.execute('query-status'); // warm up
    const samples: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const start = process.hrtime.bigint();
      await client.execute('query-status');
      samples.push(Number(process.hrtime.bigint() - start) / 1000);
    }
    console.log(`query-status via QmpClient, sequential: ${summary(samples, 'µs')}`);
    const start = process.hrtime.bigint();
    await Promise.all(Array.from({ length: 1000 }, () => client.execute('query-status')));
    const pipelined = Number(process.hrtime.bigint() - start) / 1000 / 1000;
    console.log(`query-status via QmpClient, 1000 in flight: ${pipelined.toFixed(1)} µs per call`);
    await client.close();
    console.log(
      `query-status via a bare socket loop, sequential: ${summary(await bareLoop(socket), 'µs')}`,
    );
  } finally {
    await qemu.stop();
  }
}

/** The same round trip with no client at all: one line out, wait for one line back. */
async function bareLoop(path: string): Promise<number[]> {
  const socket = createConnection({ path });
  let buffered = '';
  let waiting: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    if (buffered.includes('\n')) {
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
      waiting?.();
    }
  });
  const line = (text?: string) =>
    new Promise<void>((resolve) => {
      waiting = resolve;
      if (text) socket.write(text);
    });
  await line();
  await line('{"execute":"qmp_capabilities"}\n');
  const samples: number[] = [];
  for (let i = 0; i < 1100; i++) {
    const start = process.hrtime.bigint();
    await line('{"execute":"query-status","id":1}\n');
    if (i >= 100) samples.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  socket.destroy();
  return samples;
}

async function boots(count: number): Promise<void> {
  await ensureGuestImage();
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const serial = join(dir, `boot-${i}.log`);
    const start = Date.now();
    const qemu = await startTestQemu({ qmpSocket: join(dir, 'boot.sock'), serialFile: serial });
    try {
      await waitForSerial(serial, new RegExp(GUEST_READY_LINE));
      samples.push(Date.now() - start);
    } finally {
      await qemu.stop();
    }
  }
  console.log(`QEMU spawn to ${GUEST_READY_LINE}: ${summary(samples, 'ms')}`);
}

async function migrations(count: number): Promise<void> {
  const total: number[] = [];
  const downtime: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < count; i++) {
    const port = await freePort();
    const [source, destination] = await Promise.all([
      startTestQemu({ qmpSocket: join(dir, 'src.sock'), serialFile: join(dir, `src-${i}.log`) }),
      startTestQemu({
        qmpSocket: join(dir, 'dst.sock'),
        serialFile: join(dir, `dst-${i}.log`),
        incomingPort: port,
      }),
    ]);
    try {
      const from = await connectQmp(join(dir, 'src.sock'));
      await waitForSerial(join(dir, `src-${i}.log`), /^tick 3\r?$/m);
      await from.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'events', state: true }],
      });
      const completed = from.waitForEvent('MIGRATION', {
        predicate: (e) => e.data.status === 'completed' || e.data.status === 'failed',
      });
      const start = Date.now();
      await from.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
      await completed;
      wall.push(Date.now() - start);
      const info = await from.execute('query-migrate');
      if (info.status !== 'completed') throw new Error(`migration ${info.status}`);
      total.push(info['total-time'] ?? NaN);
      downtime.push(info.downtime ?? NaN);
      await from.close();
    } finally {
      await Promise.all([source.stop(), destination.stop()]);
    }
  }
  console.log(`migration of the 128 MiB guest, QEMU total-time: ${summary(total, 'ms')}`);
  console.log(`migration downtime: ${summary(downtime, 'ms')}`);
  console.log(`migration wall time (migrate sent to MIGRATION completed): ${summary(wall, 'ms')}`);
}

try {
  await roundTrips();
  await boots(Number(values.boots));
  await migrations(Number(values.migrations));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
