/**
 * Zenith's libvirt client side by side with libvirt's own C client library
 * (Debian's python3-libvirt binding) and virsh, in one run, on one private
 * libvirtd and its test driver (test:///default, shared by every connection
 * to the daemon while one stays open):
 *
 * 1. 10,000 domainGetInfo calls, sequential and with 32 in flight (the C
 *    client: 32 Python threads on one connection; the binding releases the
 *    GIL around each call).
 * 2. Discovery of 1,000 defined domains: list + XML + state of each (Zenith:
 *    pipelined; the C client: the usual loop; virsh: one process running a
 *    batch of commands, and one process per command for a sample).
 * 3. Event latency: `virsh suspend` → the change on Zenith's event stream
 *    (a real server process with a libvirt connection to the daemon).
 *
 *   node --import tsx bench/libvirt-compare.ts [--calls 10000] [--domains 1000] [--events 50]
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { LibvirtClient } from '../src/protocols/libvirt/libvirt-client.js';
import {
  connectListAllDomains,
  domainDefineXml,
  domainGetInfo,
  domainGetState,
  domainGetXmlDesc,
  domainLookupByName,
} from '../src/protocols/libvirt/procedures/domain.js';
import { connectUnixSocket } from '../src/protocols/libvirt/transports.js';
import { adminPassword } from '../src/testing/control-plane.js';
import { startLibvirtd } from '../src/testing/libvirtd.js';
import { startServerProcess } from '../src/testing/server-process.js';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '10000' },
    domains: { type: 'string', default: '1000' },
    events: { type: 'string', default: '50' },
  },
});
const calls = Number(values.calls);
const domains = Number(values.domains);
const eventRounds = Number(values.events);

// The C client: Debian's binding of libvirt's own library, for Debian's Python (not another python3 on PATH).
const systemPython = '/usr/bin/python3';
if (spawnSync(systemPython, ['-c', 'import libvirt']).status !== 0) {
  console.log('installing python3-libvirt (libvirt C client binding) with apt-get');
  const install = spawnSync('apt-get', ['install', '-y', '-q', 'python3-libvirt'], {
    stdio: 'inherit',
  });
  if (install.status !== 0) {
    console.error(
      'bench: python3-libvirt is needed (apt-get install python3-libvirt) and failed to install',
    );
    process.exit(1);
  }
}

const pythonClient = `
import json, sys, time, threading, libvirt
from concurrent.futures import ThreadPoolExecutor
uri, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = libvirt.open(uri)
out = {}
if mode == 'info':
    dom = conn.lookupByName('test')
    for _ in range(500): dom.info()
    t = time.perf_counter()
    for _ in range(n): dom.info()
    out['sequentialMs'] = (time.perf_counter() - t) * 1000
    per = n // 32
    def work(_):
        for _ in range(per): dom.info()
    t = time.perf_counter()
    with ThreadPoolExecutor(32) as pool: list(pool.map(work, range(32)))
    out['parallelMs'] = (time.perf_counter() - t) * 1000
    out['parallelCalls'] = per * 32
else:
    t = time.perf_counter()
    found = 0
    for d in conn.listAllDomains(0):
        d.XMLDesc(0); d.state(0); found += 1
    out['discoveryMs'] = (time.perf_counter() - t) * 1000
    out['found'] = found
print(json.dumps(out))
`;

const work = mkdtempSync(join(tmpdir(), 'zenith-bench-libvirt-'));
const script = join(work, 'client.py');
writeFileSync(script, pythonClient);
const daemon = await startLibvirtd({ virtlogd: false });
const uri = `test+unix:///default?socket=${daemon.socketPath}`;
const python = async (mode: string, n: number) =>
  JSON.parse((await run(systemPython, [script, uri, mode, String(n)])).stdout) as Record<
    string,
    number
  >;

let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
try {
  const client = await LibvirtClient.connect(() => connectUnixSocket(daemon.socketPath), {
    uri: 'test:///default',
  });
  console.log(
    `Zenith libvirt client vs libvirt's C client (python3-libvirt) vs virsh, one libvirtd, test driver, ${new Date().toISOString()}`,
  );

  // 1. domainGetInfo
  const { dom } = await client.call(domainLookupByName, { name: 'test' });
  for (let i = 0; i < 500; i++) await client.call(domainGetInfo, { dom });
  let t0 = performance.now();
  for (let i = 0; i < calls; i++) await client.call(domainGetInfo, { dom });
  const zSeq = performance.now() - t0;
  let next = 0;
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < calls) {
        next += 1;
        await client.call(domainGetInfo, { dom });
      }
    }),
  );
  const zPar = performance.now() - t0;
  const c = await python('info', calls);
  const us = (ms: number, n: number) => `${((ms * 1000) / n).toFixed(1)} µs/call`;
  const rate = (ms: number, n: number) => `${Math.round((n / ms) * 1000)} calls/s`;
  console.log(`  domainGetInfo × ${calls}, sequential:`);
  console.log(`    Zenith    ${zSeq.toFixed(0)} ms  ${us(zSeq, calls)}`);
  console.log(`    C client  ${c.sequentialMs!.toFixed(0)} ms  ${us(c.sequentialMs!, calls)}`);
  console.log(`  domainGetInfo, 32 in flight:`);
  console.log(`    Zenith    ${rate(zPar, calls)}`);
  console.log(`    C client  ${rate(c.parallelMs!, c.parallelCalls!)} (32 threads)`);

  // 2. Discovery of many domains.
  const defined = [];
  for (let i = 0; i < domains; i++)
    defined.push(
      client.call(domainDefineXml, {
        xml: `<domain type='test'><name>bench-${i}</name><memory>131072</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`,
      }),
    );
  await Promise.all(defined);
  t0 = performance.now();
  const { domains: all } = await client.call(connectListAllDomains, {
    need_results: 1,
    flags: 0,
  });
  await Promise.all(
    all.map((d) =>
      Promise.all([
        client.call(domainGetXmlDesc, { dom: d, flags: 0 }),
        client.call(domainGetState, { dom: d, flags: 0 }),
      ]),
    ),
  );
  const zDisc = performance.now() - t0;
  const cDisc = await python('discovery', 0);
  const names = execFileSync('virsh', ['-c', uri, 'list', '--all', '--name'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
  t0 = performance.now();
  const batch = names.map((n) => `dumpxml ${n}; domstate ${n}`).join('; ');
  await run('virsh', ['-q', '-c', uri, `list --all --name; ${batch}`], {
    maxBuffer: 256 * 1024 * 1024,
  });
  const vBatch = performance.now() - t0;
  const sample = names.slice(0, 20);
  t0 = performance.now();
  for (const n of sample) {
    await run('virsh', ['-c', uri, 'dumpxml', n]);
    await run('virsh', ['-c', uri, 'domstate', n]);
  }
  const vPerCall = (performance.now() - t0) / (sample.length * 2);
  console.log(`  discovery of ${all.length} domains (list + XML + state of each):`);
  console.log(`    Zenith           ${zDisc.toFixed(0)} ms`);
  console.log(`    C client         ${cDisc.discoveryMs!.toFixed(0)} ms (${cDisc.found} found)`);
  console.log(
    `    virsh, 1 process ${vBatch.toFixed(0)} ms (one batch of ${names.length * 2 + 1} commands)`,
  );
  console.log(
    `    virsh, 1 process per command: ${vPerCall.toFixed(1)} ms per command → ${((vPerCall * (names.length * 2 + 1)) / 1000).toFixed(1)} s for the same work`,
  );

  // 3. Event latency: virsh suspend → Zenith's event stream.
  const dataDir = join(work, 'server');
  server = await startServerProcess({ dataDir });
  const api = async (method: string, path: string, body?: unknown, token?: string) => {
    const response = await fetch(`${server!.url}/api/v1${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return (await response.json()) as any;
  };
  const token = (await api('POST', '/auth/login', { username: 'admin', password: adminPassword }))
    .token as string;
  const added = await api(
    'POST',
    '/connections',
    { name: 'bench-libvirt', type: 'libvirt', settings: { uri, hostName: 'bench-lv' } },
    token,
  );
  if (added.state !== 'connected') throw new Error(JSON.stringify(added));
  const vm = (await api('GET', '/vms/test', undefined, token)) as { id: string };
  const stream = await fetch(`${server.url}/api/v1/events/stream?objectId=${vm.id}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const reader = stream.body!.getReader();
  const waiters: Array<(at: number) => void> = [];
  void (async () => {
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const at = performance.now();
      text += Buffer.from(value).toString('utf8');
      let cut;
      while ((cut = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, cut);
        text = text.slice(cut + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5))
          .join('');
        if (!data) continue;
        const event = JSON.parse(data) as { type: string; data?: { changed?: string[] } };
        if (event.type === 'inventory.updated' && event.data?.changed?.includes('power.state'))
          waiters.shift()?.(at);
      }
    }
  })();
  const latencies: number[] = [];
  const virshTimes: number[] = [];
  for (let i = 0; i < eventRounds; i++) {
    for (const action of ['suspend', 'resume']) {
      const seen = new Promise<number>((resolve) => waiters.push(resolve));
      const t = performance.now();
      await run('virsh', ['-q', '-c', uri, action, 'test']);
      virshTimes.push(performance.now() - t);
      latencies.push((await seen) - t);
    }
  }
  await reader.cancel();
  latencies.sort((a, b) => a - b);
  virshTimes.sort((a, b) => a - b);
  const p = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
  console.log(
    `  event latency, virsh suspend/resume → Zenith event stream (n=${latencies.length}):`,
  );
  console.log(
    `    p50 ${p(latencies, 0.5).toFixed(1)} ms, p99 ${p(latencies, 0.99).toFixed(1)} ms (virsh's own run, process start included: p50 ${p(virshTimes, 0.5).toFixed(1)} ms)`,
  );
  await client.close();
} finally {
  await server?.kill();
  await daemon.stop();
  rmSync(work, { recursive: true, force: true });
}
