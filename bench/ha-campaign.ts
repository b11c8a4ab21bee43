/**
 * High availability fault campaign: N random faults at random moments of random operations,
 * counting VMs that ran twice (must be 0) and VMs lost (must be 0). Not part of the suite.
 *
 * The lab (src/testing/ha-lab.ts): `zenith serve` as a real process, four hosts that are each a
 * `zenith agent` in its own PID and network namespace with a shared storage directory, two of them
 * behind BMCs (Zenith's Redfish service simulator, a simulator of our own), HA on with detection
 * 3 s and self-fencing 10 s (the default), tiny TCG guests (128 MiB); half of them leave running when their host
 * is cut off, half are powered off by its agent (isolation response).
 *
 * Faults, each at a random moment (while a live migration runs, half of the time):
 * - host-crash: a power loss — the host's network goes, then everything in its namespaces is
 *   killed at once, so that it ends no connection cleanly (a host with or without a BMC);
 * - bmc-down-crash: a host's BMC stops answering, then the host crashes (fenced by its lease);
 * - partition: a host's control network cut for 1–12 s, then back;
 * - control-plane-kill: `zenith serve` killed with SIGKILL, alone or a few seconds into a host
 *   crash (in the middle of its failover), and started again on its data directory.
 *
 * All the time, every 250 ms, the QEMU processes across the hosts are counted by VM UUID: a VM
 * with two QEMUs (not started to receive a migration) for 5 s on end ran twice, and so did one
 * with two QEMUs both using CPU (running a guest) for 5 s on end. After each fault the lab is let
 * settle (up to 150 s): a VM not running exactly once then, and listed once in the inventory on
 * the host that runs it, is lost. Crashed hosts are powered on again before the next fault.
 *
 *   node --import tsx bench/ha-campaign.ts [--faults 100] [--vms 6] [--seed 1]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { ApiAnswer } from '../src/testing/control-plane.js';
import { startHaLab, type HaLab, type QemuProcess } from '../src/testing/ha-lab.js';
import { until } from '../src/testing/wait.js';

const { values } = parseArgs({
  options: {
    faults: { type: 'string', default: '100' },
    vms: { type: 'string', default: '6' },
    seed: { type: 'string', default: '1' },
  },
});
const faultCount = Number(values.faults);
const vmCount = Number(values.vms);

/** mulberry32: a small seeded generator, so that a campaign can be run again as it was. */
let seed = Number(values.seed) >>> 0;
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const between = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const hosts = ['f-a', 'f-b', 'f-c', 'f-d'];
const bmcHosts = ['f-a', 'f-b'];
const kinds = ['host-crash', 'bmc-down-crash', 'partition', 'control-plane-kill'] as const;
type Kind = (typeof kinds)[number];

interface Finding {
  fault: number;
  kind: string;
  what: string;
}
const doubleRuns: Finding[] = [];
const lost: Finding[] = [];
const otherFindings: Finding[] = [];
const byKind = new Map<string, number>();
const recoveries: number[] = [];

const lab: HaLab = await startHaLab({
  hosts,
  bmcHosts,
  prefix: 'zenith-ha-campaign-',
  ha: { failureDetectionSeconds: 3, selfFenceSeconds: 10, isolationResponse: 'power-off' },
});
const loadBefore = loadavg();
const startedAt = Date.now();
/** vm id → uuid, name. */
const vms = new Map<string, { uuid: string; name: string }>();
let currentFault = 0;
let currentKind = 'setup';
let sampling = true;

/**
 * Counts QEMUs by VM all the time. A VM with two QEMUs at once for 5 s on end, neither started to
 * receive a migration, ran twice; so did one with two QEMUs whose CPU time both grow (both run a
 * guest) for 5 s on end. (A QEMU refused by the disk's lock lives a moment: that is no double run;
 * a live migration's two halves overlap for well under 5 s.)
 */
async function sampler(): Promise<void> {
  const reported = new Set<string>();
  const history = new Map<number, Array<{ at: number; ticks: number }>>();
  const twoSince = new Map<string, number>();
  const bothActiveSince = new Map<string, number>();
  const report = (uuid: string, what: string) => {
    const key = `${currentFault}:${uuid}`;
    if (reported.has(key)) return;
    reported.add(key);
    const name = [...vms.values()].find((vm) => vm.uuid === uuid)?.name ?? uuid;
    doubleRuns.push({ fault: currentFault, kind: currentKind, what: `${name} ${what}` });
    console.log(`  DOUBLE RUN: ${name} ${what}`);
  };
  const lasting = (since: Map<string, number>, uuid: string, now: number, yes: boolean) => {
    if (!yes) {
      since.delete(uuid);
      return false;
    }
    const from = since.get(uuid) ?? now;
    since.set(uuid, from);
    return now - from >= 5000;
  };
  while (sampling) {
    try {
      const now = Date.now();
      const byVm = new Map<string, QemuProcess[]>();
      for (const qemu of await lab.qemus()) {
        byVm.set(qemu.uuid, [...(byVm.get(qemu.uuid) ?? []), qemu]);
        const seen = [...(history.get(qemu.pid) ?? []), { at: now, ticks: qemu.cpuTicks }];
        history.set(
          qemu.pid,
          seen.filter((s) => now - s.at <= 1500),
        );
      }
      const active = (qemu: QemuProcess) => {
        const seen = history.get(qemu.pid) ?? [];
        const first = seen[0];
        return first !== undefined && now - first.at >= 900 && qemu.cpuTicks > first.ticks;
      };
      for (const uuid of new Set([...byVm.keys(), ...twoSince.keys(), ...bothActiveSince.keys()])) {
        const copies = byVm.get(uuid) ?? [];
        const plain = copies.filter((q) => !q.incoming);
        if (lasting(twoSince, uuid, now, plain.length > 1))
          report(uuid, `ran on ${plain.map((q) => q.host).join(' and ')} (two QEMUs, 5 s on end)`);
        const running = copies.filter(active);
        if (lasting(bothActiveSince, uuid, now, running.length > 1))
          report(
            uuid,
            `ran on ${running.map((q) => q.host).join(' and ')} (both using CPU, 5 s on end)`,
          );
      }
      for (const pid of history.keys())
        if (![...byVm.values()].some((copies) => copies.some((q) => q.pid === pid)))
          history.delete(pid);
    } catch {
      // A namespace read while its host dies: the next sample sees it.
    }
    await sleep(250);
  }
}

const hostState = async () =>
  new Map(
    ((await lab.ok('GET', '/ha')).hosts as ApiAnswer[]).map((h) => [h.name as string, h] as const),
  );

/**
 * Every VM running exactly once — one QEMU, whose CPU time grows, on the host the inventory says,
 * the inventory saying running — and listed once; what is not, and why.
 */
async function check(): Promise<{ good: boolean; bad: string[] }> {
  const first = new Map((await lab.qemus()).map((q) => [q.pid, q.cpuTicks] as const));
  await sleep(1000);
  const qemus = await lab.qemus();
  const bad: string[] = [];
  for (const [id, vm] of vms) {
    const copies = qemus.filter((q) => q.uuid === vm.uuid);
    const running = copies.filter((q) => q.cpuTicks > (first.get(q.pid) ?? Infinity));
    const answer = await lab.api('GET', `/vms/${id}`);
    if (answer.status !== 200) {
      bad.push(`${vm.name}: not in the inventory (${answer.status})`);
      continue;
    }
    const where = answer.body.computed['location.hostName'] as string | undefined;
    const power = answer.body.facts['power.state'];
    if (
      copies.length !== 1 ||
      running.length !== 1 ||
      power !== 'running' ||
      copies[0]!.host !== where
    ) {
      const ha = await lab.api('GET', `/ha/vms/${id}`);
      bad.push(
        `${vm.name}: ${copies.length} QEMU(s) [${copies.map((c) => `${c.host}${c.incoming ? ' (incoming)' : ''}`).join(', ')}], ${running.length} running a guest; inventory ${String(power)} on ${String(where)}; HA ${String(ha.body?.state)} ${String(ha.body?.reason ?? '')}`,
      );
      continue;
    }
    const listed = (await lab.ok('GET', `/vms?filter=name=${vm.name}`)).items as ApiAnswer[];
    if (listed.length !== 1) bad.push(`${vm.name}: listed ${listed.length} times`);
  }
  return { good: bad.length === 0, bad };
}

/** Waits for every VM to run exactly once (up to 150 s); what does not is lost. */
async function settle(since: number): Promise<void> {
  let last: { good: boolean; bad: string[] } = { good: false, bad: [] };
  const settled = await until(
    'every VM running exactly once',
    async () => {
      last = await check().catch((error: unknown) => ({
        good: false,
        bad: [`check failed: ${(error as Error).message}`],
      }));
      return last.good ? true : undefined;
    },
    150_000,
    500,
  ).catch(() => false);
  if (settled) {
    recoveries.push(Date.now() - since);
    return;
  }
  for (const what of last.bad) {
    // Running a guest once, with a leftover QEMU beside it (a migration's other half): not lost.
    if (/ 1 running a guest; inventory running/.test(what)) {
      otherFindings.push({ fault: currentFault, kind: currentKind, what: `leftover: ${what}` });
      console.log(`  LEFTOVER: ${what}`);
      continue;
    }
    lost.push({ fault: currentFault, kind: currentKind, what });
    console.log(`  LOST: ${what}`);
  }
  // What happened to them, for whoever reads the campaign's output.
  for (const [id, vm] of vms) {
    if (!last.bad.some((what) => what.startsWith(`${vm.name}:`))) continue;
    const events = ((await lab.api('GET', `/events?objectId=${id}&limit=30`)).body?.items ??
      []) as ApiAnswer[];
    for (const event of events.slice(-15))
      console.log(
        `    ${new Date(event.ts as number).toISOString()} ${event.type as string} ${JSON.stringify(event.data).slice(0, 300)}`,
      );
  }
  // Carry on with what still works: a VM that is not running is started where it is.
  for (const [id, vm] of vms) {
    const answer = await lab.api('GET', `/vms/${id}`);
    if (answer.status === 200 && answer.body.facts['power.state'] !== 'running')
      await lab.task('POST', `/vms/${id}/start`).catch(() => undefined);
    if (answer.status !== 200) vms.delete(id);
    void vm;
  }
}

/** Powers the crashed hosts on again and waits until every host is healthy. */
async function restoreHosts(): Promise<void> {
  for (const name of hosts) {
    await lab.lab.restoreNetwork(lab.physical[name]!);
    if (lab.machines[name]!.running) continue;
    // Through its BMC where it has one; a BMC that never powered it off (the host crashed by
    // itself, fenced by its lease) reads it on already: then its machine starts as a reset would.
    if (bmcHosts.includes(name))
      await lab.task('POST', `/hosts/${name}/power`, { action: 'on' }).catch(() => undefined);
    if (!lab.machines[name]!.running) await lab.machines[name]!.start();
  }
  await until(
    'every host healthy',
    async () => {
      const states = await hostState();
      return hosts.every((name) => states.get(name)?.state === 'healthy') ? true : undefined;
    },
    120_000,
    500,
  );
}

/** A live migration of a random VM to another host, not awaited (it runs during the fault). */
async function migrateOne(): Promise<string> {
  const ids = [...vms.keys()];
  const id = pick(ids);
  const vm = await lab.ok('GET', `/vms/${id}`);
  const from = vm.computed['location.hostName'] as string;
  const to = pick(hosts.filter((h) => h !== from));
  const answer = await lab.api('POST', `/vms/${id}/migrate`, { targetHostId: to });
  return answer.status === 202 ? `migrating ${vms.get(id)!.name} ${from}→${to}` : 'no migration';
}

async function victimWithVms(candidates: string[]): Promise<string> {
  const counts = new Map<string, number>();
  for (const id of vms.keys()) {
    const where = (await lab.ok('GET', `/vms/${id}`)).computed['location.hostName'] as string;
    counts.set(where, (counts.get(where) ?? 0) + 1);
  }
  const loaded = candidates.filter((h) => (counts.get(h) ?? 0) > 0);
  return pick(loaded.length > 0 ? loaded : candidates);
}

/** A power loss: nothing more leaves the host, not even the ends of its connections. */
async function crash(victim: string): Promise<void> {
  await lab.lab.cutNetwork(lab.physical[victim]!);
  await lab.machines[victim]!.stop();
}

async function fault(kind: Kind): Promise<string> {
  switch (kind) {
    case 'host-crash': {
      const victim = await victimWithVms(hosts);
      await crash(victim);
      return `${victim} crashed${bmcHosts.includes(victim) ? ' (BMC)' : ' (no BMC)'}`;
    }
    case 'bmc-down-crash': {
      const victim = await victimWithVms(bmcHosts);
      lab.sim!.fault({ kind: 'hang' });
      await crash(victim);
      // The BMC answers again only once the lease has fenced the host.
      await sleep(between(8_000, 14_000));
      lab.sim!.fault(undefined);
      return `${victim}'s BMC silent, then ${victim} crashed`;
    }
    case 'partition': {
      const victim = await victimWithVms(hosts);
      const ms = between(1_000, 12_000);
      await lab.lab.cutNetwork(lab.physical[victim]!);
      await sleep(ms);
      await lab.lab.restoreNetwork(lab.physical[victim]!);
      return `${victim} cut off for ${(ms / 1000).toFixed(1)} s`;
    }
    case 'control-plane-kill': {
      if (random() < 0.5) {
        const downMs = between(0, 2_000);
        await lab.restartServer('SIGKILL', downMs);
        return `zenith serve killed (down ${downMs} ms)`;
      }
      const victim = await victimWithVms(hosts);
      await crash(victim);
      const afterMs = between(2_000, 9_000);
      await sleep(afterMs);
      await lab.restartServer('SIGKILL', between(0, 2_000));
      return `${victim} crashed, zenith serve killed ${(afterMs / 1000).toFixed(1)} s later`;
    }
  }
}

let monitor: Promise<void> = Promise.resolve();
try {
  // The VMs, spread over the hosts; half left running when their host is cut off.
  for (let i = 0; i < vmCount; i++) {
    const id = await lab.runVm(`cv-${i}`, hosts[i % hosts.length]!);
    const uuid = (await lab.ok('GET', `/vms/${id}`)).facts['vm.uuid'] as string;
    vms.set(id, { uuid, name: `cv-${i}` });
    if (i % 2 === 1)
      await lab.ok('POST', '/policies', {
        name: `cv-${i}-stays`,
        scope: { kind: 'vm', id },
        settings: { ha: { isolationResponse: 'leave-running' } },
      });
  }
  await until(
    'every VM protected',
    async () => {
      const items = (await lab.ok('GET', '/ha/vms')).items as ApiAnswer[];
      const ours = items.filter((vm) => vms.has(vm.vmId as string));
      return ours.length === vms.size && ours.every((vm) => vm.state === 'protected')
        ? true
        : undefined;
    },
    120_000,
    500,
  );
  monitor = sampler();
  console.log(
    `${faultCount} faults on ${hosts.length} hosts (${bmcHosts.join(', ')} behind BMCs), ${vms.size} protected VMs; detection 3 s, self-fencing 10 s; seed ${values.seed}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
  );
  for (currentFault = 1; currentFault <= faultCount; currentFault++) {
    const kind = pick(kinds);
    currentKind = kind;
    byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
    const during = random() < 0.5 ? await migrateOne().catch(() => 'no migration') : 'idle';
    await sleep(between(0, 3_000));
    const at = Date.now();
    let what: string;
    try {
      what = await fault(kind);
    } catch (error) {
      what = `fault ended with ${(error as Error).message}`;
      otherFindings.push({ fault: currentFault, kind, what });
    }
    await settle(at);
    await restoreHosts().catch((error: unknown) => {
      otherFindings.push({
        fault: currentFault,
        kind,
        what: `hosts not back: ${(error as Error).message}`,
      });
    });
    console.log(
      `#${currentFault} ${kind}: ${what}; ${during}; settled ${((Date.now() - at) / 1000).toFixed(1)} s; double runs ${doubleRuns.length}, lost ${lost.length}`,
    );
  }
} finally {
  sampling = false;
  await monitor;
  const loadAfter = loadavg();
  const sorted = [...recoveries].sort((a, b) => a - b);
  const quantile = (q: number) =>
    sorted.length === 0
      ? 0
      : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1000;
  console.log('');
  console.log(
    `faults: ${currentFault - 1} (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}) in ${((Date.now() - startedAt) / 60_000).toFixed(1)} min`,
  );
  console.log(`VMs that ran twice: ${doubleRuns.length}`);
  for (const finding of doubleRuns)
    console.log(`  #${finding.fault} ${finding.kind}: ${finding.what}`);
  console.log(`VMs lost (not running exactly once after settling): ${lost.length}`);
  for (const finding of lost) console.log(`  #${finding.fault} ${finding.kind}: ${finding.what}`);
  if (otherFindings.length > 0) {
    console.log(`other findings: ${otherFindings.length}`);
    for (const finding of otherFindings)
      console.log(`  #${finding.fault} ${finding.kind}: ${finding.what}`);
  }
  console.log(
    `time to every VM running exactly once after a fault: p50 ${quantile(0.5).toFixed(1)} s, p90 ${quantile(0.9).toFixed(1)} s, max ${quantile(1).toFixed(1)} s`,
  );
  console.log(
    `load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`,
  );
  await lab.close();
}
