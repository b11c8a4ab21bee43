/**
 * The libvirt RPC client against a real libvirtd and its test driver
 * (test+unix:///default): latency of sequential domainGetInfo calls, then
 * throughput with many calls in flight, then stream throughput through a
 * volume upload and download (qemu:///system storage driver, directory pool).
 *
 *   node --import tsx bench/libvirt-rpc.ts [--calls 10000] [--window 1,5,20,100] [--mib 64]
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { LibvirtClient } from '../src/protocols/libvirt/libvirt-client.js';
import { domainGetInfo, domainLookupByName } from '../src/protocols/libvirt/procedures/domain.js';
import {
  storagePoolCreateXml,
  storageVolCreateXml,
  storageVolDownload,
  storageVolUpload,
} from '../src/protocols/libvirt/procedures/storage.js';
import { connectUnixSocket } from '../src/protocols/libvirt/transports.js';
import { startLibvirtd } from '../src/testing/libvirtd.js';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '10000' },
    window: { type: 'string', default: '1,5,20,100' },
    mib: { type: 'string', default: '64' },
  },
});
const calls = Number(values.calls);
const windows = values.window.split(',').map(Number);
const mib = Number(values.mib);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const daemon = await startLibvirtd();
try {
  const client = await LibvirtClient.connect(() => connectUnixSocket(daemon.socketPath), {
    uri: 'test:///default',
  });
  const { dom } = await client.call(domainLookupByName, { name: 'test' });
  for (let i = 0; i < 500; i++) await client.call(domainGetInfo, { dom }); // warm up

  const latencies: number[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) {
    const t0 = process.hrtime.bigint();
    await client.call(domainGetInfo, { dom });
    latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
  latencies.sort((a, b) => a - b);
  console.log(
    `sequential domainGetInfo, n=${calls}: ${totalMs.toFixed(0)} ms total, ${((totalMs * 1000) / calls).toFixed(1)} µs/call mean`,
  );
  console.log(
    `  p50 ${percentile(latencies, 50).toFixed(1)} µs, p99 ${percentile(latencies, 99).toFixed(1)} µs, max ${latencies.at(-1)!.toFixed(0)} µs`,
  );

  for (const window of windows) {
    let next = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (next < calls) {
          next += 1;
          await client.call(domainGetInfo, { dom });
        }
      }),
    );
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(
      `pipelined domainGetInfo, ${window} in flight: ${Math.round((calls / ms) * 1000)} calls/s (${((ms * 1000) / calls).toFixed(1)} µs/call)`,
    );
  }
  await client.close();

  const storage = await LibvirtClient.connect(() => connectUnixSocket(daemon.socketPath), {
    uri: 'qemu:///system',
  });
  const path = join(daemon.root, 'pool');
  await mkdir(path);
  const { pool } = await storage.call(storagePoolCreateXml, {
    xml: `<pool type='dir'><name>bench</name><target><path>${path}</path></target></pool>`,
    flags: 0,
  });
  const bytes = mib * 1024 * 1024;
  const { vol } = await storage.call(storageVolCreateXml, {
    pool,
    xml: `<volume><name>bench.img</name><capacity unit='bytes'>${bytes}</capacity><target><format type='raw'/></target></volume>`,
    flags: 0,
  });
  const block = Buffer.alloc(1024 * 1024, 0x5a);
  let t0 = process.hrtime.bigint();
  const upload = await storage.openStream(storageVolUpload, {
    vol,
    offset: 0,
    length: 0,
    flags: 0,
  });
  await pipeline(
    Readable.from(
      (function* () {
        for (let i = 0; i < mib; i++) yield block;
      })(),
    ),
    upload,
  );
  let ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(`volume upload ${mib} MiB: ${(mib / (ms / 1000)).toFixed(0)} MiB/s`);
  t0 = process.hrtime.bigint();
  const download = await storage.openStream(storageVolDownload, {
    vol,
    offset: 0,
    length: 0,
    flags: 0,
  });
  let received = 0;
  await pipeline(
    download,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        received += chunk.length;
        cb();
      },
    }),
  );
  ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(
    `volume download ${(received / 1024 / 1024).toFixed(0)} MiB: ${(mib / (ms / 1000)).toFixed(0)} MiB/s`,
  );
  await storage.close();
} finally {
  await daemon.stop();
}
