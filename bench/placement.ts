/**
 * Placement at scale, on fleets of the simulated driver (not real machines):
 *
 * 1. placements per second for 10,000 VMs on 10,000 hosts with constraints,
 *    a hard anti-affinity rule (500 apps × 20 replicas kept apart), a
 *    datacenter policy and a preference — sampled (as VM creation does) and
 *    exhaustive (every host checked), with the quality of the result;
 * 2. the time to compute a rebalancing plan for 200,000 VMs on 10,000 hosts
 *    (balance and consolidate), and to schedule it;
 * 3. the plan's quality against the classic greedy baseline, in the same process
 *    on the same fleet: imbalance before and after, moves, memory moved,
 *    predicted completion.
 *
 *   node --import tsx bench/placement.ts [--vms 10000] [--max-moves 1000] [--skip-exhaustive]
 */
import { parseArgs } from 'node:util';
import { seededRandom } from '../src/hypervisors/simulated/fleet.js';
import { planGreedyBaseline } from '../src/services/plans/greedy-baseline.js';
import { scheduleMoves } from '../src/services/plans/migration-planner.js';
import { adaptiveSample, placeVm } from '../src/services/placement/placement-engine.js';
import { loadOf, type PlacementModel } from '../src/services/placement/placement-model.js';
import type { PolicyInput } from '../src/services/policy/policy-document.js';
import {
  imbalanceOf,
  planRebalance,
  type RebalanceResult,
} from '../src/services/plans/rebalancer.js';
import { fixtureModel, simulatedFleetIndex } from '../src/testing/placement-fixtures.js';

const { values } = parseArgs({
  options: {
    vms: { type: 'string', default: '10000' },
    'max-moves': { type: 'string', default: '1000' },
    'skip-exhaustive': { type: 'boolean', default: false },
  },
});
const GiB = 1024 ** 3;
const vmCount = Number(values.vms);
const maxMoves = Number(values['max-moves']);
const tenThousandHosts = { datacenters: 2, clustersPerDatacenter: 10, hostsPerCluster: 500 };

const ms = (start: number) => performance.now() - start;
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(0)} GiB`;

function placementPolicies(datacenterId: string): PolicyInput[] {
  return [
    {
      name: 'fleet',
      scope: { kind: 'global' },
      constraints: [
        { name: 'connected', expression: "host.state == 'connected'" },
        { name: 'fits', expression: 'vm.memory.bytes <= host.memory.totalBytes / 16' },
      ],
      preferences: [{ name: 'cheap', expression: '1 - host.cost.perHour', weight: 1 }],
      rules: [
        {
          name: 'replicas-apart',
          kind: 'separate',
          vms: "'tier:web' in vm.tags",
          groupBy: "tagValue(vm.tags, 'app')",
          hard: true,
        },
      ],
    },
    {
      name: 'dc1-big-vms',
      scope: { kind: 'datacenter', id: datacenterId },
      when: "'size:big' in vm.tags",
      constraints: [{ name: 'cores', expression: 'host.cpu.cores >= vm.cpu.count * 8' }],
    },
  ];
}

function drafts(count: number) {
  const random = seededRandom(42);
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  return Array.from({ length: count }, (_, i) => {
    const cpus = pick([1, 2, 2, 4, 4, 8]);
    return {
      name: `bench-${i}`,
      cpus,
      memoryBytes: pick([1, 2, 4, 4, 8, 16]) * GiB,
      tags: ['tier:web', `app:a${i % 500}`, ...(cpus >= 8 ? ['size:big'] : [])],
    };
  });
}

function placeAll(model: PlacementModel, sampled: boolean) {
  const vms = drafts(vmCount);
  const sample = sampled ? adaptiveSample(model.hosts.length) : undefined;
  let refused = 0;
  const started = performance.now();
  for (const [i, draft] of vms.entries()) {
    const vm = { ...model.draftVm(draft), id: `new:${i}` };
    const decision = placeVm(model, vm, sample ? { sample } : {});
    if (!decision.chosen) {
      refused++;
      continue;
    }
    model.place(vm, model.host(decision.chosen.hostId));
  }
  const elapsed = ms(started);
  // Quality: anti-affinity kept, how evenly the load spread, how many hosts were used.
  const appsPerHost = new Map<string, number>();
  let broken = 0;
  for (const host of model.hosts)
    for (const vmId of host.vms) {
      const tags = model.vms.get(vmId)!.facts.fact('tags') as string[];
      const key = `${host.index}/${tags.find((t) => t.startsWith('app:'))}`;
      const seen = (appsPerHost.get(key) ?? 0) + 1;
      appsPerHost.set(key, seen);
      if (seen > 1) broken++;
    }
  const used = model.hosts.filter((h) => h.vms.size > 0).length;
  return { elapsed, refused, broken, used, imbalance: imbalanceOf(model.hosts) };
}

function describePlan(
  label: string,
  result: RebalanceResult,
  planMs: number,
  model: PlacementModel,
) {
  const scheduled = performance.now();
  const schedule = scheduleMoves(model, result.moves);
  const scheduleMs = ms(scheduled);
  // Back to the starting state for the next plan.
  for (const move of [...result.moves].reverse())
    model.move(model.vms.get(move.vmId)!, model.host(move.fromHostId));
  console.log(
    `  ${label}: planned in ${planMs.toFixed(0)} ms, scheduled in ${scheduleMs.toFixed(0)} ms; ${result.moves.length} moves, ${gib(result.bytesMoved)} of memory; imbalance (std. dev. of load) ${pct(result.before.stddevLoad)} → ${pct(result.after.stddevLoad)}, busiest host ${pct(result.before.maxLoad)} → ${pct(result.after.maxLoad)}${result.hostsEmptied.length ? `, ${result.hostsEmptied.length} hosts emptied` : ''}; predicted completion ${(schedule.predictedCompletionMs / 60_000).toFixed(1)} min (peak ${schedule.peakConcurrency} at once)`,
  );
}

console.log(
  `Zenith placement benchmark — simulated fleets (not real machines), node ${process.version}, ${new Date().toISOString()}`,
);

// 1. Placements.
{
  const index = simulatedFleetIndex({ ...tenThousandHosts, vmsPerHost: 0 });
  const datacenter = index.ofKind('datacenter').sort((a, b) => a.name.localeCompare(b.name))[0]!;
  console.log(
    `\n1. ${vmCount} VMs placed one by one on ${index.ofKind('host').length} empty hosts; policies: 2 constraints, a hard anti-affinity rule (500 apps × ${vmCount / 500} replicas apart), a datacenter policy, a preference`,
  );
  for (const sampled of values['skip-exhaustive'] ? [true] : [true, false]) {
    const built = performance.now();
    const model = fixtureModel(index, placementPolicies(datacenter.id));
    const buildMs = ms(built);
    const result = placeAll(model, sampled);
    console.log(
      `  ${sampled ? `sampled (best of ${adaptiveSample(model.hosts.length)} feasible hosts, as creation does)` : 'exhaustive (every host checked)'}: ${(vmCount / (result.elapsed / 1000)).toFixed(0)} placements/s (${(result.elapsed / 1000).toFixed(2)} s; model built in ${buildMs.toFixed(0)} ms); refused ${result.refused}; anti-affinity broken ${result.broken}; ${result.used} hosts used; load std. dev. ${pct(result.imbalance.stddevLoad)}, busiest ${pct(result.imbalance.maxLoad)}`,
    );
  }
  const model = fixtureModel(index, placementPolicies(datacenter.id));
  const explained = performance.now();
  const decision = placeVm(model, model.draftVm({ ...drafts(1)[0]!, name: 'explain-me' }), {
    explain: true,
  });
  console.log(
    `  one preview with a full explanation (every host, rejected or ranked): ${ms(explained).toFixed(0)} ms, ${decision.feasibleHosts} feasible of ${decision.hostsConsidered}`,
  );
}

// 2 and 3. Rebalancing 200,000 VMs.
{
  const started = performance.now();
  const index = simulatedFleetIndex({ ...tenThousandHosts, vmsPerHost: 20 });
  const indexMs = ms(started);
  const built = performance.now();
  const model = fixtureModel(index, []);
  const buildMs = ms(built);
  const before = imbalanceOf(model.hosts);
  console.log(
    `\n2. Rebalancing ${model.vms.size} VMs on ${model.hosts.length} hosts (fleet generated and indexed in ${(indexMs / 1000).toFixed(1)} s, placement model built in ${buildMs.toFixed(0)} ms); load: mean ${pct(before.meanLoad)}, std. dev. ${pct(before.stddevLoad)}, busiest ${pct(before.maxLoad)}; at most ${maxMoves} moves`,
  );
  let t = performance.now();
  const balance = planRebalance(model, { mode: 'balance', maxMoves, minBenefit: 0.01 });
  describePlan('balance, minimum benefit 1 point', balance, ms(t), model);
  t = performance.now();
  const consolidate = planRebalance(model, {
    mode: 'consolidate',
    maxMoves,
    minBenefit: 0,
    consolidateBelow: 0.2,
    targetLoad: 0.8,
  });
  describePlan('consolidate hosts under 20% load, targets up to 80%', consolidate, ms(t), model);

  console.log(
    `\n3. Against the greedy baseline (biggest VM of the busiest host to the least loaded host that can take it), same fleet, same cap:`,
  );
  t = performance.now();
  const greedy = planGreedyBaseline(model, maxMoves);
  describePlan('greedy baseline', greedy, ms(t), model);
  describePlan('Zenith balance (the same plan as above)', balance, 0, model);
  // How much each move bought: the drop of the sum of squared loads, per GiB moved.
  const gain = (r: RebalanceResult) =>
    (r.before.stddevLoad ** 2 - r.after.stddevLoad ** 2) / Math.max(1, r.bytesMoved / GiB);
  console.log(
    `  variance removed per GiB moved: Zenith ${gain(balance).toExponential(2)}, greedy ${gain(greedy).toExponential(2)}`,
  );
  const sizes = model.hosts.map((h) => loadOf(h)).sort((a, b) => b - a);
  console.log(
    `  (the busiest 1% of hosts before: ${pct(sizes[Math.floor(sizes.length / 100)]!)} and above)`,
  );
}
