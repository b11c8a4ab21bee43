/**
 * vSphere discovery and change propagation against govmomi's simulator.
 *
 * 1. First full discovery of a simulated vCenter of --vms VMs (10 clusters of 10 hosts per 10,000),
 *    side by side in the same run, each in a fresh process, --runs times:
 *    - govmomi: the reference client in bench/govmomi-list (VMware's Go SDK) listing every VM with
 *      its host and power state;
 *    - zenith-lean: Zenith's VIM client reading exactly that (VM name, host, power state; host names);
 *    - zenith-discover: the vsphere driver's connect() + discover(): every object, with all facts.
 *    Each reports wall time (login included), HTTP round trips and peak resident memory.
 * 2. Change propagation: power changes made by another session (--parallel at a time), each timed
 *    from the call that makes it to the driver's watch() event that reports it: --scale-changes in
 *    the big inventory, then --changes in one of --changes-vms VMs (the simulator re-collects the
 *    whole view for every update it records, so at full size each change costs it seconds).
 *
 *   node --import tsx bench/vsphere-discovery.ts [--vms 10000] [--runs 3] [--changes 1000]
 *     [--changes-vms 100] [--scale-changes 20] [--parallel 1]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { systemClock } from '../src/core/clock.js';
import { silentLogger } from '../src/core/logger.js';
import type { DiscoveredVm } from '../src/hypervisors/driver.js';
import { validateVsphereSettings } from '../src/hypervisors/vsphere/settings.js';
import { VsphereDriver } from '../src/hypervisors/vsphere/vsphere-driver.js';
import { containerViewSpec, PropertyCollector } from '../src/protocols/vim/property-collector.js';
import { asTask, waitForTask } from '../src/protocols/vim/tasks.js';
import { VimClient } from '../src/protocols/vim/vim-client.js';
import { MoRef, ref, str } from '../src/protocols/vim/vim-values.js';
import { ensureGoProgram } from '../src/testing/go-build.js';
import { startVsphereSimulator } from '../src/testing/vsphere-simulator.js';

const run = promisify(execFile);

interface Measure {
  vms: number;
  wallMs: number;
  roundTrips: number;
  maxRssKb: number;
}

const { values } = parseArgs({
  options: {
    vms: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '3' },
    changes: { type: 'string', default: '1000' },
    parallel: { type: 'string', default: '1' },
    'changes-vms': { type: 'string', default: '100' },
    'scale-changes': { type: 'string', default: '20' },
    child: { type: 'string' },
    url: { type: 'string' },
    thumbprint: { type: 'string' },
  },
});

if (values.child) {
  process.stdout.write(
    JSON.stringify(await child(values.child, values.url!, values.thumbprint!)) + '\n',
  );
  process.exit(0);
}

/** One measurement in this (fresh) process. */
async function child(mode: string, url: string, thumbprint: string): Promise<Measure> {
  const started = performance.now();
  if (mode === 'zenith-discover') {
    const driver = new VsphereDriver({
      settings: validateVsphereSettings({ url, username: 'bench', thumbprint }),
      password: 'bench-password',
      clock: systemClock,
      logger: silentLogger,
    });
    await driver.connect();
    const { objects } = await driver.discover();
    const wallMs = performance.now() - started;
    const roundTrips = driver.client.stats.calls;
    return {
      vms: objects.filter((o) => o.kind === 'vm').length,
      wallMs,
      roundTrips,
      maxRssKb: process.resourceUsage().maxRSS,
    };
  }
  const client = await VimClient.connect({
    url,
    username: 'bench',
    password: 'bench-password',
    tls: { thumbprint },
    keepAliveMs: 0,
  });
  const view = (await client.invoke('CreateContainerView', client.content.viewManager, {
    container: client.content.rootFolder,
    type: ['VirtualMachine', 'HostSystem'],
    recursive: true,
  })) as MoRef;
  const objects = await new PropertyCollector(client).retrieveAll([
    containerViewSpec(view, [
      { type: 'VirtualMachine', pathSet: ['name', 'runtime.host', 'runtime.powerState'] },
      { type: 'HostSystem', pathSet: ['name'] },
    ]),
  ]);
  const hostNames = new Map(
    objects
      .filter((o) => o.obj.type === 'HostSystem')
      .map((o) => [o.obj.value, str(o.props.get('name'))]),
  );
  const listed = objects
    .filter((o) => o.obj.type === 'VirtualMachine')
    .map((o) => ({
      name: str(o.props.get('name')),
      host: hostNames.get(ref(o.props.get('runtime.host'))?.value ?? ''),
      power: str(o.props.get('runtime.powerState')),
    }))
    .filter((vm) => vm.host !== undefined);
  return {
    vms: listed.length,
    wallMs: performance.now() - started,
    roundTrips: client.stats.calls,
    maxRssKb: process.resourceUsage().maxRSS,
  };
}

const vms = Number(values.vms);
const runs = Number(values.runs);
const clusters = Math.max(1, Math.ceil(vms / 1000));
const perPool = Math.ceil(vms / clusters);
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

console.log(
  `# vSphere simulator: ${clusters} clusters x 10 hosts, ${perPool} VMs per cluster (${clusters * perPool} VMs)`,
);
const simStarted = performance.now();
const [sim, goClient] = await Promise.all([
  startVsphereSimulator({
    clustersPerDatacenter: clusters,
    hostsPerCluster: 10,
    standaloneHostsPerDatacenter: 0,
    vmsPerPool: perPool,
  }),
  ensureGoProgram('govmomi-list', 'bench/govmomi-list'),
]);
console.log(`simulator ready in ${((performance.now() - simStarted) / 1000).toFixed(1)} s`);
try {
  const certFile = join(mkdtempSync(join(tmpdir(), 'zenith-bench-')), 'cert.pem');
  writeFileSync(certFile, sim.certificatePem);
  const results = new Map<string, Measure[]>();
  const measure = async (name: string): Promise<Measure> => {
    const { stdout } =
      name === 'govmomi'
        ? await run(goClient, ['-url', sim.url, '-cert', certFile], { maxBuffer: 1 << 20 })
        : await run(
            process.execPath,
            [
              '--import',
              'tsx',
              import.meta.filename,
              '--child',
              name,
              '--url',
              sim.url,
              '--thumbprint',
              sim.thumbprint,
            ],
            {
              maxBuffer: 1 << 20,
            },
          );
    return JSON.parse(stdout.trim().split('\n').pop()!) as Measure;
  };
  for (let r = 0; r < runs; r++) {
    for (const name of ['govmomi', 'zenith-lean', 'zenith-discover']) {
      const m = await measure(name);
      results.set(name, [...(results.get(name) ?? []), m]);
      console.log(
        `run ${r + 1} ${name.padEnd(16)} ${m.wallMs.toFixed(0).padStart(6)} ms  ${m.roundTrips} round trips  ${(m.maxRssKb / 1024).toFixed(0)} MiB peak RSS  ${m.vms} VMs`,
      );
    }
  }
  console.log(
    '\n| client | VMs | wall (median) | wall (min–max) | round trips | peak RSS (median) |',
  );
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const [name, list] of results) {
    const walls = list.map((m) => m.wallMs);
    console.log(
      `| ${name} | ${list[0]!.vms} | ${median(walls).toFixed(0)} ms | ${Math.min(...walls).toFixed(0)}–${Math.max(...walls).toFixed(0)} ms | ${list[0]!.roundTrips} | ${(median(list.map((m) => m.maxRssKb)) / 1024).toFixed(0)} MiB |`,
    );
  }
  // The simulator re-collects a filter's whole view for every update it records (tasks included),
  // so a change costs it time in proportion to the inventory: a few changes at full size,
  // the --changes on a small inventory.
  await propagation(sim.url, sim.thumbprint, Number(values['scale-changes']), 1);
} finally {
  await sim.stop();
}
const small = await startVsphereSimulator({
  clustersPerDatacenter: 1,
  hostsPerCluster: 10,
  standaloneHostsPerDatacenter: 0,
  vmsPerPool: Number(values['changes-vms']),
});
try {
  await propagation(small.url, small.thumbprint, Number(values.changes), Number(values.parallel));
} finally {
  await small.stop();
}

/** Power changes made by another session, timed until the driver's watch() reports each. */
async function propagation(
  url: string,
  thumbprint: string,
  changes: number,
  parallel: number,
): Promise<void> {
  const driver = new VsphereDriver({
    settings: validateVsphereSettings({ url, username: 'bench', thumbprint }),
    password: 'bench-password',
    clock: systemClock,
    logger: silentLogger,
  });
  const stop = new AbortController();
  const waiters = new Map<string, { power: string; resolve: (at: number) => void }>();
  await driver.connect();
  const deltas = driver.watch(stop.signal);
  const { objects } = await driver.discover();
  await driver.whenFollowing();
  const reading = (async () => {
    for await (const delta of deltas) {
      if (delta.type !== 'upsert' || delta.object.kind !== 'vm') continue;
      const vm = delta.object as DiscoveredVm;
      const waiter = waiters.get(vm.externalId);
      if (waiter && waiter.power === vm.powerState) {
        waiters.delete(vm.externalId);
        waiter.resolve(performance.now());
      }
    }
  })();
  const operator = await VimClient.connect({
    url,
    username: 'operator',
    password: 'operator-password',
    tls: { thumbprint },
    keepAliveMs: 0,
  });
  const targets = objects.filter((o) => o.kind === 'vm').map((o) => o.externalId);
  const fromCall: number[] = [];
  const fromTaskEnd: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async (_, worker) => {
      for (;;) {
        const n = next++;
        if (n >= changes) return;
        const id = targets[(worker + parallel * Math.floor(n / parallel)) % targets.length]!;
        const on = driver.cache.get(id)?.props.get('runtime.powerState') === 'poweredOn';
        const seen = new Promise<number>((resolve) =>
          waiters.set(id, { power: on ? 'stopped' : 'running', resolve }),
        );
        const t0 = performance.now();
        const method = on ? 'PowerOffVM_Task' : 'PowerOnVM_Task';
        await waitForTask(
          operator,
          asTask(await operator.invoke(method, new MoRef('VirtualMachine', id)), method),
        );
        const t1 = performance.now();
        const at = await seen;
        fromCall.push(at - t0);
        fromTaskEnd.push(at - t1);
      }
    }),
  );
  const totalS = (performance.now() - started) / 1000;
  stop.abort();
  await operator.close();
  await driver.close();
  await reading;
  fromCall.sort((a, b) => a - b);
  fromTaskEnd.sort((a, b) => a - b);
  console.log(
    `\nchange propagation in an inventory of ${targets.length} VMs, ${changes} power changes, ${parallel} at a time, ${totalS.toFixed(1)} s in all:`,
  );
  console.log(`| measured from | p50 | p99 | max |`);
  console.log(`| --- | --- | --- | --- |`);
  console.log(
    `| the call that makes the change | ${percentile(fromCall, 50).toFixed(0)} ms | ${percentile(fromCall, 99).toFixed(0)} ms | ${fromCall.at(-1)!.toFixed(0)} ms |`,
  );
  console.log(
    `| the task seen finished by its caller | ${percentile(fromTaskEnd, 50).toFixed(0)} ms | ${percentile(fromTaskEnd, 99).toFixed(0)} ms | ${fromTaskEnd.at(-1)!.toFixed(0)} ms |`,
  );
}
