/**
 * A scoped user's list among many selecting resource groups (review finding
 * 10): 20,000 simulated VMs, 200 resource groups with selectors, and a user
 * bound to five of the groups, which pick few VMs (so a page is found only
 * by scanning the fleet). Prints the latency of the
 * user's `GET /vms?limit=1000` alone, then of `GET /health` while four such
 * lists run at once (is the event loop free?).
 *
 *   node --import tsx bench/access-selectors.ts [--groups 200] [--seconds 10]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { adminPassword } from '../src/testing/control-plane.js';
import { startServerProcess } from '../src/testing/server-process.js';

const { values } = parseArgs({
  options: {
    groups: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '10' },
  },
});
const groups = Number(values.groups);
const seconds = Number(values.seconds);
const fleet = { datacenters: 2, clustersPerDatacenter: 10, hostsPerCluster: 10, vmsPerHost: 100 };

const percentile = (samples: number[], p: number) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const figures = (samples: number[]) =>
  `p50 ${percentile(samples, 50).toFixed(1)} ms, p99 ${percentile(samples, 99).toFixed(1)} ms, max ${Math.max(...samples).toFixed(1)} ms (${samples.length} requests)`;

const dataDir = mkdtempSync(join(tmpdir(), 'zenith-bench-selectors-'));
const server = await startServerProcess({ dataDir });
try {
  const call = async (method: string, path: string, token: string | null, body?: unknown) => {
    const response = await fetch(`${server.url}/api/v1${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const answer = (await response.json()) as Record<string, unknown>;
    if (!response.ok)
      throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(answer)}`);
    return answer;
  };
  const login = async (username: string, password: string) =>
    (await call('POST', '/auth/login', null, { username, password })).token as string;
  const admin = await login('admin', adminPassword);
  await call('POST', '/connections', admin, { name: 'fleet', type: 'simulated', settings: fleet });
  const picked: string[] = [];
  for (let g = 0; g < groups; g++) {
    // Selectors that read a fact and a tag, as operators write them; every fifth picks VMs.
    const group = await call('POST', '/resource-groups', admin, {
      name: `team-${g}`,
      facts: {
        'user.selector':
          g % 5 === 0 ? `cpu.count>=${1 + (g % 8)} tags=env:prod` : `user.team=t${g}`,
      },
    });
    // The user is bound to a few groups that pick few VMs: a page is found only by scanning the fleet.
    if (g === 7 || g === 35 || g === 99 || g === 120 || g === 160) picked.push(group.id as string);
  }
  await call('POST', '/roles', admin, { name: 'reader', permissions: ['inventory.read'] });
  await call('POST', '/users', admin, {
    name: 'scoped',
    role: 'none',
    password: 'scoped-password-1',
  });
  for (const scope of picked)
    await call('POST', '/role-bindings', admin, { subject: 'scoped', role: 'reader', scope });
  const scoped = await login('scoped', 'scoped-password-1');
  const timed = async (path: string, token: string | null) => {
    const started = performance.now();
    const response = await fetch(`${server.url}/api/v1${path}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return performance.now() - started;
  };
  const list = '/vms?limit=1000';
  const seen = ((await call('GET', list, scoped)).items as unknown[]).length;
  const alone: number[] = [];
  for (let i = 0; i < 30; i++) alone.push(await timed(list, scoped));
  console.log(
    `${fleet.datacenters * fleet.clustersPerDatacenter * fleet.hostsPerCluster * fleet.vmsPerHost} VMs, ${groups} selecting resource groups; the scoped user sees ${seen} on the first page`,
  );
  console.log(`scoped GET ${list} alone: ${figures(alone)}`);
  const deadline = performance.now() + seconds * 1000;
  const loaded: number[] = [];
  const health: number[] = [];
  const client = async () => {
    while (performance.now() < deadline) loaded.push(await timed(list, scoped));
  };
  const prober = async () => {
    while (performance.now() < deadline) {
      health.push(await timed('/health', null));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  await Promise.all([client(), client(), client(), client(), prober()]);
  console.log(`scoped GET ${list}, 4 at once: ${figures(loaded)}`);
  console.log(`GET /health meanwhile: ${figures(health)}`);
} finally {
  await server.kill();
  rmSync(dataDir, { recursive: true, force: true });
}
