/**
 * vSphere discovery and change propagation against govmomi's simulator.
 *
 * 1. First full discovery of a simulated vCenter of --vms VMs (10 clusters of 10 hosts per 10,000),
 *    side by side in the same run, each in a fresh process, --runs times:
 *    - govmomi: the reference client in bench/govmomi-list (VMware's Go SDK) listing every VM with
 *      its host and power state;
 *    - zenith-lean: Zenith's VIM client reading exactly that (VM name, host, power state; host names);
 *    - govmomi-discover: the Go SDK reading the property set of Zenith's discover() (the same views
 *      and paths, decoded into govmomi's typed values);
 *    - zenith-discover: the vsphere driver's connect() + discover(): every object, with all facts.
 *    Each reports wall time (login included), HTTP round trips and peak resident memory.
 * 2. Change propagation in the same inventory: --changes power changes made by another session,
 *    one at a time, each timed from the call that makes it to the report of it, by
 *    - zenith: the driver's watch() event;
 *    - govmomi-watch: a Go SDK watcher with the driver's VM filter (the same view and paths), its
 *      own collector and WaitForUpdatesEx — the simulator's floor for that filter.
 *    With --small-changes N, then N changes in an inventory of --changes-vms VMs.
 *
 *   node --import tsx bench/vsphere-discovery.ts [--vms 10000] [--runs 3] [--changes 1000]
 *     [--only discovery|propagation] [--small-changes 0] [--changes-vms 100]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { systemClock } from '../src/core/clock.js';
import { silentLogger } from '../src/core/logger.js';
import type { DiscoveredVm } from '../src/hypervisors/driver.js';
import {
  nonVmPropertySpecs,
  nonVmViewTypes,
  vmPaths,
  vmTriggerPaths,
} from '../src/hypervisors/vsphere/inventory-model.js';
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
    only: { type: 'string' },
    'changes-vms': { type: 'string', default: '100' },
    'small-changes': { type: 'string', default: '0' },
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

/** The property set of the driver's discover(), for the Go SDK's discover mode. */
const discoverSpec = [
  { viewTypes: nonVmViewTypes, propSet: nonVmPropertySpecs },
  { viewTypes: ['VirtualMachine'], propSet: [{ type: 'VirtualMachine', pathSet: vmPaths }] },
];
/** The driver's VM feed filter, for the Go SDK's watch mode. */
const watchSpec = [
  {
    viewTypes: ['VirtualMachine'],
    propSet: [{ type: 'VirtualMachine', pathSet: vmTriggerPaths }],
  },
];
const only = values.only;

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
    const { stdout } = name.startsWith('govmomi')
      ? await run(
          goClient,
          [
            '-url',
            sim.url,
            '-cert',
            certFile,
            ...(name === 'govmomi-discover'
              ? ['-mode', 'discover', '-spec', JSON.stringify(discoverSpec)]
              : []),
          ],
          { maxBuffer: 1 << 20 },
        )
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
  for (let r = 0; r < (only === 'propagation' ? 0 : runs); r++) {
    for (const name of ['govmomi', 'zenith-lean', 'govmomi-discover', 'zenith-discover']) {
      const m = await measure(name);
      results.set(name, [...(results.get(name) ?? []), m]);
      console.log(
        `run ${r + 1} ${name.padEnd(16)} ${m.wallMs.toFixed(0).padStart(6)} ms  ${m.roundTrips} round trips  ${(m.maxRssKb / 1024).toFixed(0)} MiB peak RSS  ${m.vms} VMs`,
      );
    }
  }
  if (results.size > 0) {
    console.log(
      '\n| client | VMs | wall (median) | wall (min–max) | round trips | peak RSS (median) |',
    );
    console.log('| --- | --- | --- | --- | --- | --- |');
  }
  for (const [name, list] of results) {
    const walls = list.map((m) => m.wallMs);
    console.log(
      `| ${name} | ${list[0]!.vms} | ${median(walls).toFixed(0)} ms | ${Math.min(...walls).toFixed(0)}–${Math.max(...walls).toFixed(0)} ms | ${list[0]!.roundTrips} | ${(median(list.map((m) => m.maxRssKb)) / 1024).toFixed(0)} MiB |`,
    );
  }
  if (only !== 'discovery') {
    const changes = Number(values.changes);
    await propagation(sim.url, sim.thumbprint, changes);
    const { stdout } = await run(
      goClient,
      [
        '-url',
        sim.url,
        '-cert',
        certFile,
        '-mode',
        'watch',
        '-changes',
        String(changes),
        '-spec',
        JSON.stringify(watchSpec),
      ],
      { maxBuffer: 1 << 20 },
    );
    const go = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>;
    console.log(
      `| govmomi-watch (the same VM filter) | ${go.changes} | ${go.p50Ms!.toFixed(0)} ms | ${go.p99Ms!.toFixed(0)} ms | ${go.maxMs!.toFixed(0)} ms |`,
    );
  }
} finally {
  await sim.stop();
}
const smallChanges = Number(values['small-changes']);
if (smallChanges > 0) {
  const small = await startVsphereSimulator({
    clustersPerDatacenter: 1,
    hostsPerCluster: 10,
    standaloneHostsPerDatacenter: 0,
    vmsPerPool: Number(values['changes-vms']),
  });
  try {
    await propagation(small.url, small.thumbprint, smallChanges);
  } finally {
    await small.stop();
  }
}

/** Power changes made by another session, timed until the driver's watch() reports each. */
async function propagation(url: string, thumbprint: string, changes: number): Promise<void> {
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
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 1 }, async () => {
      for (let n = 0; n < changes; n++) {
        const id = targets[n % targets.length]!;
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
    `\nchange propagation in an inventory of ${targets.length} VMs, ${changes} power changes one at a time (zenith: ${totalS.toFixed(1)} s in all), from the call that makes each:`,
  );
  console.log(`| watcher | changes | p50 | p99 | max |`);
  console.log(`| --- | --- | --- | --- | --- |`);
  console.log(
    `| zenith (driver watch()) | ${fromCall.length} | ${percentile(fromCall, 50).toFixed(0)} ms | ${percentile(fromCall, 99).toFixed(0)} ms | ${fromCall.at(-1)!.toFixed(0)} ms |`,
  );
  console.log(
    `| zenith, from the task seen finished | ${fromTaskEnd.length} | ${percentile(fromTaskEnd, 50).toFixed(0)} ms | ${percentile(fromTaskEnd, 99).toFixed(0)} ms | ${fromTaskEnd.at(-1)!.toFixed(0)} ms |`,
  );
}
