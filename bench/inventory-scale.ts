/**
 * Inventory at scale: a simulated fleet of 1,000 hosts and 50,000 VMs.
 * Prints: time to ingest the first full discovery, the server's resident
 * memory after ingest, and p50/p99 latency of GET /api/v1/vms filtered by a
 * fact and by a tag, and sorted by a fact, under 50 concurrent clients, with SQLite and PostgreSQL.
 *
 *   node --import tsx bench/inventory-scale.ts [--hosts-per-cluster 50] [--vms-per-host 50] [--store sqlite|postgres|both]
 */
import autocannon from 'autocannon';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { adminPassword } from '../src/testing/control-plane.js';
import { createTestDatabase } from '../src/testing/postgres.js';
import { startServerProcess } from '../src/testing/server-process.js';

const { values } = parseArgs({
  options: {
    'hosts-per-cluster': { type: 'string', default: '50' },
    'vms-per-host': { type: 'string', default: '50' },
    store: { type: 'string', default: 'both' },
    duration: { type: 'string', default: '10' },
  },
});
const fleet = {
  datacenters: 2,
  clustersPerDatacenter: 10,
  hostsPerCluster: Number(values['hosts-per-cluster']),
  vmsPerHost: Number(values['vms-per-host']),
};

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

async function measure(store: 'sqlite' | 'postgres'): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'zenith-bench-'));
  const database = store === 'postgres' ? await createTestDatabase() : undefined;
  let server = await startServerProcess({
    dataDir,
    ...(database ? { databaseUrl: database.url } : {}),
  });
  try {
    const login = await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: adminPassword }),
    });
    const { token } = (await login.json()) as { token: string };
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const rssBefore = rssMiB(server.process.pid!);
    const started = performance.now();
    const added = await fetch(`${server.url}/api/v1/connections`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'fleet', type: 'simulated', settings: fleet }),
    });
    const ingestMs = performance.now() - started;
    const connection = (await added.json()) as { state: string };
    if (connection.state !== 'connected')
      throw new Error(`ingest failed: ${JSON.stringify(connection)}`);
    const counted = (await (
      await fetch(`${server.url}/api/v1/hosts?limit=1000`, { headers })
    ).json()) as { items: unknown[] };
    const rssAfter = rssMiB(server.process.pid!);
    const vmCount = 2 * 10 * fleet.hostsPerCluster * fleet.vmsPerHost;
    console.log(`\n[${store}] ${counted.items.length} hosts, ${vmCount} VMs`);
    console.log(
      `  first discovery ingested in ${(ingestMs / 1000).toFixed(2)} s (${Math.round(vmCount / (ingestMs / 1000))} VMs/s)`,
    );
    console.log(
      `  server resident memory: ${rssBefore.toFixed(0)} MiB before, ${rssAfter.toFixed(0)} MiB after ingest`,
    );
    for (const [label, query] of [
      [
        'fact filter power.state=suspended, limit 100',
        '/api/v1/vms?filter=power.state%3Dsuspended&limit=100',
      ],
      ['tag filter env:test, limit 100', '/api/v1/vms?tag=env%3Atest&limit=100'],
      [
        'fact + tag + comparison, limit 100',
        '/api/v1/vms?tag=tier%3Adb&filter=cpu.count%3E%3D4&filter=power.state%3Drunning&limit=100',
      ],
      ['sorted by a fact (-memory.bytes), limit 50', '/api/v1/vms?sort=-memory.bytes&limit=50'],
    ] as const) {
      const result = await autocannon({
        url: `${server.url}${query}`,
        connections: 50,
        duration: Number(values.duration),
        headers: { authorization: `Bearer ${token}` },
      });
      const errors = result.errors + result.non2xx;
      console.log(
        `  GET ${label}: p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, ${Math.round(result.requests.average)} req/s, 50 clients${errors ? `, ${errors} errors` : ''}`,
      );
    }
    await server.kill();
    const restarted = performance.now();
    server = await startServerProcess({
      dataDir,
      ...(database ? { databaseUrl: database.url } : {}),
    });
    console.log(
      `  restart to serving (index rebuilt from the store, fleet re-synced): ${((performance.now() - restarted) / 1000).toFixed(2)} s, resident memory ${rssMiB(server.process.pid!).toFixed(0)} MiB`,
    );
  } finally {
    await server.kill();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

console.log(
  `Zenith inventory benchmark — simulated fleet (not real machines), node ${process.version}, ${new Date().toISOString()}`,
);
for (const store of values.store === 'both'
  ? (['sqlite', 'postgres'] as const)
  : [values.store as 'sqlite' | 'postgres'])
  await measure(store);
