/**
 * Replication and recovery plans between two "sites": `zenith agent` hosts in their own network and
 * PID namespaces with storage of their own (root needed), one `zenith serve`, tiny TCG guests.
 *
 * 1. RPO against the link: a guest writes its numbered pattern to a 64 MiB disk without pause while
 *    it is replicated every `--interval` seconds over a link throttled to `--mbit` (tc's token
 *    bucket on the recovery host's veth). Per cycle: the bytes it sent, how long it took, the RPO
 *    just before it was ready (since the previous point's data). The limit the link allows: the
 *    interval plus the time the link needs for what changed in it (bytes ÷ bandwidth); the figure
 *    is the RPO achieved over that limit.
 * 2. RTO of a plan of `--vms` VMs in one group (a test failover, each up when it prints its ready
 *    line; production stopped first, so nothing else runs), against the same VMs' own boot: started
 *    at once from stopped, each to its first tick (the line after the ready line).
 *
 *   node --import tsx bench/replication.ts [--mbit 40] [--interval 10] [--cycles 6] [--vms 10]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { ApiAnswer } from '../src/testing/control-plane.js';
import { GUEST_READY_LINE, guestAppend } from '../src/testing/guest-image.js';
import { startHaLab } from '../src/testing/ha-lab.js';
import { until } from '../src/testing/wait.js';

const { values } = parseArgs({
  options: {
    mbit: { type: 'string', default: '40' },
    interval: { type: 'string', default: '10' },
    cycles: { type: 'string', default: '6' },
    vms: { type: 'string', default: '10' },
  },
});
const mbit = Number(values.mbit);
const interval = Number(values.interval);
const cycles = Number(values.cycles);
const vmCount = Number(values.vms);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

console.log(`load at start: ${load()}`);
const lab = await startHaLab({
  hosts: ['rb-a', 'rb-b'],
  storage: 'per-host',
  prefix: 'zenith-dr-bench-',
});
const ok = (method: string, path: string, body?: unknown) => lab.ok(method, path, body);
try {
  await ok('POST', '/sites', { name: 'bench-a', hosts: ['rb-a'] });
  await ok('POST', '/sites', { name: 'bench-b', hosts: ['rb-b'] });

  // 1. RPO against the link.
  const recoveryHost = lab.physical['rb-b']!;
  await lab.lab.throttle(recoveryHost, { mbit, burst: '64kb', latency: '500ms' });
  const writer = await lab.runVm('writer', 'rb-a', 128, {
    cmdline: guestAppend({ pattern: true }),
    diskMiB: 64,
  });
  await ok('POST', `/vms/${writer}/replication`, {
    targetHost: 'rb-b',
    rpoSeconds: Math.max(60, interval * 4),
    intervalSeconds: interval,
    keepPoints: 3,
  });
  await until(
    `${cycles + 1} cycles`,
    async () => {
      const report = (await ok('GET', `/replications/report?vm=${writer}`)).items as ApiAnswer[];
      return report.length >= cycles + 1 ? report : undefined;
    },
    (cycles + 2) * (interval + 60) * 1000,
    1000,
  );
  const report = (
    (await ok('GET', `/replications/report?vm=${writer}`)).items as ApiAnswer[]
  ).slice(0, cycles + 1);
  const bytesPerSecond = (mbit * 1e6) / 8;
  console.log(`\nRPO over a ${mbit} Mbit/s link, a cycle every ${interval} s (load ${load()})`);
  console.log('seq  scope    sent MiB  cycle s  link-limit s  RPO before s  limit s  RPO/limit');
  const ratios: number[] = [];
  for (const [index, row] of report.entries()) {
    const cycleSeconds = (row.finishedAt - row.takenAt) / 1000;
    const linkSeconds = row.readBytes / bytesPerSecond;
    const before = row.rpoBeforeSeconds as number | null;
    const limit = interval + linkSeconds;
    if (index > 0 && before !== null) ratios.push(before / limit);
    console.log(
      [
        String(row.seq).padEnd(4),
        (index === 0 ? 'full' : 'changed').padEnd(8),
        (row.readBytes / 2 ** 20).toFixed(2).padStart(8),
        cycleSeconds.toFixed(2).padStart(8),
        linkSeconds.toFixed(2).padStart(13),
        (before === null ? '-' : before.toFixed(2)).padStart(13),
        limit.toFixed(2).padStart(8),
        (index > 0 && before !== null ? (before / limit).toFixed(2) : '-').padStart(10),
      ].join(' '),
    );
  }
  if (ratios.length > 0)
    console.log(
      `RPO achieved / limit, changed cycles: median ${ratios.sort((a, b) => a - b)[Math.floor(ratios.length / 2)]!.toFixed(2)}, worst ${ratios.at(-1)!.toFixed(2)}`,
    );
  await lab.lab.throttle(recoveryHost, null);
  await ok('DELETE', `/vms/${writer}/replication`);
  await lab.task('POST', `/vms/${writer}/stop`);

  // 2. RTO of a plan of N VMs against their own boot.
  const ids: string[] = [];
  for (let i = 0; i < vmCount; i++) ids.push(await lab.runVm(`p${i}`, 'rb-a', 128));
  for (const id of ids)
    await ok('POST', `/vms/${id}/replication`, {
      targetHost: 'rb-b',
      rpoSeconds: 300,
      intervalSeconds: 60,
      keepPoints: 1,
    });
  await until(
    'every VM replicated once',
    async () => {
      const list = (await ok('GET', '/replications')).items as ApiAnswer[];
      return (
        list.filter((r) => (r.points as ApiAnswer[]).some((p) => p.state === 'ready')).length >=
          vmCount || undefined
      );
    },
    600_000,
    1000,
  );
  // Production stopped first, so that the copies boot on an otherwise idle machine, as the VMs'
  // own boot below does (a test failover does not need production running).
  await Promise.all(ids.map((id) => lab.task('POST', `/vms/${id}/stop`)));
  await ok('POST', '/recovery-plans', {
    name: 'bench',
    sourceSite: 'bench-a',
    targetSite: 'bench-b',
    groups: [{ vms: ids, marker: GUEST_READY_LINE, timeoutSeconds: 600 }],
  });
  const test = await lab.task('POST', '/recovery-plans/bench/runs', { operation: 'test' }, 900_000);
  if (test.state !== 'succeeded') throw new Error(JSON.stringify(test.error));
  const rto = test.result.rtoSeconds as number;
  await lab.task(
    'POST',
    `/recovery-plans/bench/runs/${test.result.id as string}/cleanup`,
    undefined,
    300_000,
  );
  // The same VMs' own boot: started at once from stopped, each to its first tick on the console.
  const started = Date.now();
  await Promise.all(
    ids.map(async (id) => {
      await lab.task('POST', `/vms/${id}/start`);
      await lab.consoleTicks(id, 1);
    }),
  );
  const boot = (Date.now() - started) / 1000;
  console.log(
    `\nRTO of a plan of ${vmCount} VMs in one group (test failover, up = ready line): ${rto.toFixed(1)} s`,
  );
  console.log(`the same ${vmCount} VMs started at once, to their first tick: ${boot.toFixed(1)} s`);
  console.log(`RTO / own boot: ${(rto / boot).toFixed(2)} (load ${load()})`);
} finally {
  await lab.close();
}
