/**
 * A replication's sync mode end to end, between two "sites" (`zenith agent` hosts in their own
 * network and PID namespaces, storage of their own; root needed), one `zenith serve`, a tiny TCG
 * guest writing its numbered pattern (a block of 4 KiB at a time, each fsynced) to a 64 MiB disk.
 *
 * 1. The guest's write rate (blocks/s, from its console) unprotected, then with every write
 *    mirrored to site B: what the write-blocking mirror costs the guest, end to end.
 * 2. Setting the mirror up: from protect to `mirroring` (a first interval copy, then the mirror's
 *    first pass of the whole disk).
 * 3. The link to B cut (its veth down: silence): how long until the mirror is given up and the
 *    guest writes again; with the link back, how long until the mirror is set up again.
 * 4. Site A crashed: the failover's time to the VM up at B, and the blocks the guest said it wrote
 *    that the point it started from lacks (0 is RPO 0).
 *
 *   node --import tsx bench/sync-replication.ts [--seconds 20]
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ApiAnswer } from '../src/testing/control-plane.js';
import { guestBytes, patternPrefix } from '../src/testing/disk-image.js';
import { guestAppend } from '../src/testing/guest-image.js';
import { startHaLab } from '../src/testing/ha-lab.js';
import { until } from '../src/testing/wait.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '20' } } });
const seconds = Number(values.seconds);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

console.log(`sync replication bench: load ${load()} at start`);
const lab = await startHaLab({
  hosts: ['bs-a', 'bs-b'],
  storage: 'per-host',
  prefix: 'zenith-bench-sync-',
});
try {
  const app = await lab.runVm('app', 'bs-a', 128, {
    cmdline: guestAppend({ pattern: true }),
    diskMiB: 64,
  });
  const guest = await lab.openConsole(app);
  const reported = () => Math.max(0, ...guest.numbers('pattern'));
  const rate = async () => {
    const from = reported();
    await sleep(seconds * 1000);
    return (reported() - from) / seconds;
  };
  const syncState = async () =>
    (await lab.ok('GET', `/vms/${app}/replication`)).sync.state as string;
  const waitFor = (state: string, timeoutMs = 180_000) =>
    until(
      `sync ${state}`,
      async () => ((await syncState()) === state ? true : undefined),
      timeoutMs,
      100,
    );
  await lab.ok('POST', '/sites', { name: 'site-a', hosts: ['bs-a'] });
  await lab.ok('POST', '/sites', { name: 'site-b', hosts: ['bs-b'] });
  await until('the guest writing', async () => (reported() > 0 ? true : undefined), 60_000);

  const alone = await rate();
  console.log(`1. guest writes unprotected: ${alone.toFixed(1)} blocks/s (load ${load()})`);

  const protectedAt = Date.now();
  await lab.ok('POST', `/vms/${app}/replication`, {
    targetHost: 'bs-b',
    mode: 'sync',
    rpoSeconds: 60,
    intervalSeconds: 30,
  });
  await waitFor('mirroring');
  console.log(`2. protect → mirroring: ${((Date.now() - protectedAt) / 1000).toFixed(1)} s`);
  const mirrored = await rate();
  console.log(
    `1. guest writes mirrored: ${mirrored.toFixed(1)} blocks/s, ${((100 * (alone - mirrored)) / alone).toFixed(0)} % fewer (load ${load()})`,
  );

  const b = lab.physical['bs-b']!;
  await lab.lab.cutNetwork(b);
  const cutAt = Date.now();
  await waitFor('fallback', 120_000);
  const givenUp = Date.now();
  const at = reported();
  await until(
    'the guest writing again',
    async () => (reported() > at ? true : undefined),
    60_000,
    50,
  );
  console.log(
    `3. link cut → mirror given up: ${((givenUp - cutAt) / 1000).toFixed(1)} s; → guest writing again: ${((Date.now() - cutAt) / 1000).toFixed(1)} s`,
  );
  await lab.lab.restoreNetwork(b);
  const backAt = Date.now();
  await waitFor('mirroring', 240_000);
  console.log(`3. link back → mirroring again: ${((Date.now() - backAt) / 1000).toFixed(1)} s`);

  await lab.ok('POST', '/recovery-plans', {
    name: 'bench-sync',
    sourceSite: 'site-a',
    targetSite: 'site-b',
    groups: [{ vms: ['app'] }],
  });
  await sleep(3000);
  await lab.lab.crash(lab.physical['bs-a']!);
  const said = reported();
  const crashedAt = Date.now();
  await until(
    'site A seen gone',
    async () => {
      const host = await lab.ok('GET', '/hosts/bs-a');
      const connection = await lab.ok('GET', `/connections/${host.connectionId as string}`);
      return connection.state !== 'connected' || undefined;
    },
    60_000,
    100,
  );
  const ended = await lab.task(
    'POST',
    '/recovery-plans/bench-sync/runs',
    { operation: 'failover' },
    240_000,
  );
  if (ended.state !== 'succeeded') throw new Error(JSON.stringify(ended.error));
  const [run] = (await lab.ok('GET', '/recovery-plans/bench-sync/runs')).items as ApiAnswer[];
  const replication = await lab.ok('GET', `/vms/${app}/replication`);
  const used = (replication.points as ApiAnswer[]).find(
    (p) => p.takenAt === run!.vms[0].pointTakenAt,
  )!;
  const blocks = patternPrefix(
    guestBytes(
      join(replication.directory as string, `disk0-s${String(used.seq).padStart(6, '0')}.qcow2`),
    ),
  );
  console.log(
    `4. site A crashed → app up at B: ${((Date.now() - crashedAt) / 1000).toFixed(1)} s (plan RTO ${run!.rtoSeconds} s); blocks the guest said it wrote that the point lacks: ${Math.max(0, said - blocks)} (point ${blocks}, said ${said})`,
  );
  console.log(`load ${load()} at the end`);
  guest.close();
} finally {
  await lab.close();
}
