/**
 * What HA admission control costs per decision on a simulated fleet: a placement model built from
 * the inventory index, a new VM placed on a host, and every failure within tolerance simulated
 * (the what-if of each combination of hosts) — for "tolerate 1" and "tolerate 2" set on each
 * cluster, and "tolerate 1" set globally (every host of the fleet may be the one that fails);
 * and the question asked first when no policy sets a tolerance.
 *
 *   node --import tsx bench/ha-admission.ts [--clusters 4] [--hosts 16] [--vms 40] [--runs 5]
 */
import { parseArgs } from 'node:util';
import {
  admit,
  anyToleratesFailures,
  recoverability,
  toleranceOf,
} from '../src/services/ha/admission.js';
import type { PolicyInput } from '../src/services/policy/policy-document.js';
import {
  fixtureModel,
  policyIndexOf,
  simulatedFleetIndex,
} from '../src/testing/placement-fixtures.js';

const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '4' },
    hosts: { type: 'string', default: '16' },
    vms: { type: 'string', default: '40' },
    runs: { type: 'string', default: '5' },
  },
});
const fleet = {
  seed: 7,
  datacenters: 1,
  clustersPerDatacenter: Number(values.clusters),
  hostsPerCluster: Number(values.hosts),
  vmsPerHost: Number(values.vms),
};
const runs = Number(values.runs);
const index = simulatedFleetIndex(fleet);
const GiB = 1024 ** 3;

function policiesFor(failures: number, scope: 'global' | 'cluster'): PolicyInput[] {
  if (scope === 'global')
    return [
      {
        name: 'ha',
        scope: { kind: 'global' },
        settings: { ha: { enabled: true, hostFailuresToTolerate: failures } },
      },
    ];
  return index.ofKind('cluster').map((cluster) => ({
    name: `ha-${cluster.name}`,
    scope: { kind: 'cluster', id: cluster.id },
    settings: { ha: { enabled: true, hostFailuresToTolerate: failures } },
  }));
}

const median = (samples: number[]) => [...samples].sort((a, b) => a - b)[samples.length >> 1]!;

const vmCount = index.ofKind('vm').length;
const hostCount = index.ofKind('host').length;
console.log(
  `fleet: ${hostCount} hosts, ${vmCount} VMs, ${fleet.hostsPerCluster} hosts per cluster`,
);
for (const [failures, scope] of [
  [1, 'cluster'],
  [2, 'cluster'],
  [1, 'global'],
] as const) {
  const policies = policiesFor(failures, scope);
  const build: number[] = [];
  const check: number[] = [];
  let verdict = '';
  for (let run = 0; run < runs; run++) {
    let t = performance.now();
    const model = fixtureModel(index, policies);
    build.push(performance.now() - t);
    const host = model.hosts[run % model.hosts.length]!;
    const vm = model.draftVm({ name: `new-${run}`, cpus: 2, memoryBytes: 4 * GiB });
    model.place(vm, host);
    t = performance.now();
    const refusal = admit(model, 'create', vm, host);
    check.push(performance.now() - t);
    const tried = recoverability(model, toleranceOf(model, host)!);
    verdict = `${refusal ? 'refused' : 'admitted'} after ${tried.tried} failure(s) tried${tried.exhaustive ? '' : ' (approximated)'}`;
  }
  console.log(
    `tolerate ${failures} (${scope}): model ${median(build).toFixed(1)} ms, check ${median(check).toFixed(1)} ms (median of ${runs}; ${verdict})`,
  );
}
const none = policyIndexOf([]);
const t = performance.now();
for (let i = 0; i < 1_000_000; i++) anyToleratesFailures(none);
console.log(
  `no tolerance set anywhere: ${(((performance.now() - t) / 1_000_000) * 1e6).toFixed(0)} ns per decision (no model built)`,
);
