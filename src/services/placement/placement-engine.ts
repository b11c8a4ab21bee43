/**
 * Chooses a host for one VM on a placement model: every host is checked in
 * one fixed order — state, connection, hypervisor type, capacity (with
 * overcommit), hard affinity rules, policy constraints — and the first check
 * that fails is the reason the host is rejected. The hosts that pass are
 * ranked: spread or pack, cost, soft rules, preferences. With `explain`, the
 * decision lists every rejected host with its reason and the best candidates
 * with their score broken down; without it nothing is allocated per host.
 *
 * A VmPlacer holds what depends on the VM only (the policies in force for
 * it, its affinity groups, its VM-only constraints) so that the rebalancer
 * and the migration planner can ask about single hosts cheaply.
 */
import {
  checkConstraint,
  checkConstraintAt,
  checkHardRules,
  constraintsOf,
  formatBytes,
  onlyVm,
  preferences,
  rulesOf,
  scoringSettings,
  softRules,
  whenHolds,
  type ActiveConstraint,
  type ActiveRule,
  type Candidate,
  type PlacementDecision,
  type Rejection,
  type RejectionReason,
  type ScorePart,
} from './placement-checks.js';
import type { CompiledConstraint, CompiledPolicy } from '../policy/policy-document.js';
import { loadOf, type PlacementModel } from './placement-model.js';
import type { HostSlot, VmSlot } from './slots.js';

export type {
  Candidate,
  PlacementDecision,
  Rejection,
  RejectionReason,
  ScorePart,
} from './placement-checks.js';

export interface PlaceOptions {
  explain?: boolean;
  /** How many ranked candidates an explanation lists. */
  topCandidates?: number;
  /** Hosts not to choose (the VM's own host when it is being moved). */
  exclude?: ReadonlySet<number>;
  /** Only hosts for which this holds are considered (a rebalancing scope). */
  within?: (host: HostSlot) => boolean;
  /**
   * Stop once this many hosts can take the VM, and choose the best of them
   * (ignored with `explain`). The scan starts where the previous one ended,
   * so successive placements look at different hosts.
   */
  sample?: number;
}

/**
 * How many feasible hosts to score in a fleet of `hosts`: all of a small
 * fleet; of a large one a share that shrinks from half to 5 % — the
 * trade-off the Kubernetes scheduler makes (percentageOfNodesToScore).
 */
export function adaptiveSample(hosts: number): number {
  if (hosts <= 100) return hosts;
  const percent = Math.max(5, 50 - hosts / 125);
  return Math.max(100, Math.floor((hosts * percent) / 100));
}

type Env = {
  vm: VmSlot['facts'];
  group: VmSlot['groupFacts'];
  user: PlacementModel['requester'];
  host?: HostSlot['facts'];
  cluster?: HostSlot['clusterFacts'];
  datacenter?: HostSlot['datacenterFacts'];
};

/** One VM's view of placement: evaluate() answers for one host at a time. */
export class VmPlacer {
  /** After evaluate(): the rejection (explain only), or the score of an accepted host. */
  reason: RejectionReason | null = null;
  score = 0;
  loadAfter = 0;
  parts: ScorePart[] | undefined;

  readonly #env: Env;
  readonly #vmPolicies: CompiledPolicy[];
  readonly #vmRules: ActiveRule[];
  readonly #vmConstraints: ActiveConstraint[];
  readonly #vmOnlyFailure = new Map<CompiledConstraint, RejectionReason | null>();
  readonly #hostPolicyApplies = new Map<CompiledPolicy, boolean>();
  readonly #hostPolicies = new Map<readonly CompiledPolicy[], CompiledPolicy[]>();
  readonly #hostRules = new Map<readonly CompiledPolicy[], ActiveRule[]>();
  readonly #hostConstraints = new Map<readonly CompiledPolicy[], ActiveConstraint[]>();
  readonly #settings = new Map<readonly CompiledPolicy[], ReturnType<typeof scoringSettings>>();

  constructor(
    readonly model: PlacementModel,
    readonly vm: VmSlot,
  ) {
    this.#env = { vm: vm.facts, group: vm.groupFacts, user: model.requester };
    this.#vmPolicies = model.vmPolicies(vm).filter((policy) => whenHolds(policy, this.#env));
    this.#vmRules = rulesOf(model, vm, this.#vmPolicies, false);
    this.#vmConstraints = constraintsOf(this.#vmPolicies);
    // VM-only constraints do not depend on the host: decide them once.
    for (const entry of this.#vmConstraints)
      if (onlyVm(entry.constraint.expression))
        this.#vmOnlyFailure.set(entry.constraint, checkConstraint(entry, this.#env));
  }

  /** Checks the VM on a host: the rejection's kind, or null when the host can take it (score set). */
  evaluate(host: HostSlot, explain: boolean): string | null {
    const { vm, model } = this;
    this.reason = null;
    if (host.state !== 'connected') {
      if (explain)
        this.reason = {
          kind: 'state',
          state: host.state,
          message:
            host.state === 'maintenance'
              ? `the host is in maintenance${host.mode === 'entering-maintenance' ? ' (being evacuated)' : ''}`
              : host.state === 'standby'
                ? 'the host is powered off by power management (standby): it is powered on when capacity is needed'
                : host.state === 'bare-metal'
                  ? typeof host.object.computed['machine.linkedHostId'] === 'string'
                    ? 'a physical machine as its BMC sees it: VMs go to the hypervisor host linked to it'
                    : 'a bare-metal machine: no hypervisor Zenith manages runs on it'
                  : `the host is ${host.state}`,
        };
      return 'state';
    }
    if (host.connectionId !== null) {
      const existing = vm.object !== null && vm.fromDescription !== true;
      const compatible = existing
        ? vm.connectionId !== null &&
          model.connections.canMigrate(vm.connectionId, host.connectionId)
        : model.connections.canCreate(host.connectionId);
      if (!compatible) {
        if (explain)
          this.reason = {
            kind: 'connection',
            message: existing
              ? 'the VM cannot migrate to a host of this connection (only within one connection, or between Zenith agents)'
              : "this host's connection cannot create VMs",
          };
        return 'connection';
      }
    }
    if (vm.type !== null && host.vmTypes.length > 0 && !host.vmTypes.includes(vm.type)) {
      if (explain)
        this.reason = {
          kind: 'hypervisor',
          vmType: vm.type,
          hostTypes: host.vmTypes,
          message: `a ${vm.type} VM cannot run on a host that runs ${host.vmTypes.join(', ')}`,
        };
      return 'hypervisor';
    }
    const here = host.vms.has(vm.id);
    const needCpu = vm.active && !here ? vm.cpu : 0;
    const needMemory = vm.active && !here ? vm.memoryBytes : 0;
    if (host.cpuUsed + needCpu > host.cpuCapacity) {
      if (explain)
        this.reason = {
          kind: 'capacity',
          resource: 'cpu',
          needed: vm.cpu,
          free: host.cpuCapacity - host.cpuUsed,
          capacity: host.cpuCapacity,
          overcommit: host.cpuOvercommit,
          message: `needs ${vm.cpu} vCPUs, ${Math.max(0, host.cpuCapacity - host.cpuUsed)} of ${host.cpuCapacity} free (${host.cpuCores} cores × overcommit ${host.cpuOvercommit})`,
        };
      return 'capacity';
    }
    if (host.memoryUsed + needMemory > host.memoryCapacity) {
      if (explain)
        this.reason = {
          kind: 'capacity',
          resource: 'memory',
          needed: vm.memoryBytes,
          free: host.memoryCapacity - host.memoryUsed,
          capacity: host.memoryCapacity,
          overcommit: host.memoryOvercommit,
          message: `needs ${formatBytes(vm.memoryBytes)} of memory, ${formatBytes(Math.max(0, host.memoryCapacity - host.memoryUsed))} of ${formatBytes(host.memoryCapacity)} free (overcommit ${host.memoryOvercommit})`,
        };
      return 'capacity';
    }

    const env = this.#env;
    env.host = host.facts;
    env.cluster = host.clusterFacts;
    env.datacenter = host.datacenterFacts;
    const hostPolicies = this.#applicableHostPolicies(host);
    let hostRules = this.#hostRules.get(host.policies);
    if (!hostRules)
      this.#hostRules.set(host.policies, (hostRules = rulesOf(model, vm, hostPolicies, true)));
    const ruleFailure =
      checkHardRules(model, vm, host, this.#vmRules, explain) ??
      checkHardRules(model, vm, host, hostRules, explain);
    if (ruleFailure) {
      this.reason = ruleFailure;
      return 'rule';
    }

    let failure: RejectionReason | null = null;
    for (const entry of this.#vmConstraints) {
      const known = this.#vmOnlyFailure.get(entry.constraint);
      failure = known !== undefined ? known : checkConstraintAt(model, entry, env, host);
      if (failure) break;
    }
    if (!failure && hostPolicies.length > 0) {
      let hostConstraints = this.#hostConstraints.get(host.policies);
      if (!hostConstraints)
        this.#hostConstraints.set(host.policies, (hostConstraints = constraintsOf(hostPolicies)));
      for (const entry of hostConstraints) {
        failure = checkConstraintAt(model, entry, env, host);
        if (failure) break;
      }
    }
    if (failure) {
      this.reason = failure;
      return failure.kind;
    }

    let settings = this.#settings.get(host.policies);
    if (!settings)
      this.#settings.set(
        host.policies,
        (settings = scoringSettings([...hostPolicies, ...this.#vmPolicies])),
      );
    const loadAfter = loadOf(host, needCpu, needMemory);
    const parts: ScorePart[] | undefined = explain ? [] : undefined;
    const strategyValue =
      settings.strategy === 'pack' ? Math.min(1, loadAfter) : 1 - Math.min(1, loadAfter);
    let score = settings.strategyWeight * strategyValue;
    parts?.push({
      kind: 'strategy',
      name: settings.strategy,
      value: strategyValue,
      weight: settings.strategyWeight,
      points: settings.strategyWeight * strategyValue,
    });
    const costRange = model.costRange;
    if (costRange && settings.costWeight > 0) {
      const cheapness =
        host.costPerHour === null
          ? 0.5
          : costRange.max > costRange.min
            ? (costRange.max - host.costPerHour) / (costRange.max - costRange.min)
            : 1;
      score += settings.costWeight * cheapness;
      parts?.push({
        kind: 'cost',
        name: host.costPerHour === null ? 'cost unknown' : `${host.costPerHour}/h`,
        value: cheapness,
        weight: settings.costWeight,
        points: settings.costWeight * cheapness,
      });
    }
    score +=
      softRules(model, vm, host, this.#vmRules, parts) +
      softRules(model, vm, host, hostRules, parts);
    score += preferences(this.#vmPolicies, env, parts) + preferences(hostPolicies, env, parts);
    this.score = score;
    this.loadAfter = loadAfter;
    this.parts = parts;
    return null;
  }

  /** Whether the VM may go to (or stay on) this host right now. */
  fits(host: HostSlot): boolean {
    return this.evaluate(host, false) === null;
  }

  #applicableHostPolicies(host: HostSlot): CompiledPolicy[] {
    if (host.policies.length === 0) return [];
    let list = this.#hostPolicies.get(host.policies);
    if (!list) {
      list = host.policies.filter((policy) => {
        let applies = this.#hostPolicyApplies.get(policy);
        if (applies === undefined)
          this.#hostPolicyApplies.set(policy, (applies = whenHolds(policy, this.#env)));
        return applies;
      });
      this.#hostPolicies.set(host.policies, list);
    }
    return list;
  }
}

/** Places one VM: the chosen host (or none) and, with `explain`, why every other host was not. */
export function placeVm(
  model: PlacementModel,
  vm: VmSlot,
  options: PlaceOptions = {},
  placer: VmPlacer = new VmPlacer(model, vm),
): PlacementDecision {
  const explain = options.explain === true;
  const rejected: Rejection[] = [];
  const rejectedByReason: Record<string, number> = {};
  const scored: Candidate[] = [];
  let best: Candidate | null = null;
  let considered = 0;
  let feasible = 0;

  const hosts = model.hosts;
  const count = hosts.length;
  const sample =
    !explain && options.sample !== undefined && options.sample < count ? options.sample : 0;
  const start = sample > 0 ? model.scanStart % count : 0;
  let visited = 0;
  for (; visited < count; visited++) {
    if (sample > 0 && feasible >= sample) break;
    const host = hosts[start + visited < count ? start + visited : start + visited - count]!;
    if (options.within && !options.within(host)) continue;
    considered++;
    let kind: string | null;
    if (options.exclude?.has(host.index)) {
      kind = 'current';
      placer.reason = explain ? { kind: 'current', message: `${vm.name} runs here` } : null;
    } else kind = placer.evaluate(host, explain);
    if (kind !== null) {
      rejectedByReason[kind] = (rejectedByReason[kind] ?? 0) + 1;
      if (explain && placer.reason)
        rejected.push({ hostId: host.id, hostName: host.name, reason: placer.reason });
      continue;
    }
    feasible++;
    if (!explain && best && placer.score <= best.score) continue;
    const candidate: Candidate = {
      hostId: host.id,
      hostName: host.name,
      score: placer.score,
      loadAfter: placer.loadAfter,
      ...(placer.parts ? { breakdown: placer.parts } : {}),
    };
    if (explain) scored.push(candidate);
    if (!best || candidate.score > best.score) best = candidate;
  }

  if (sample > 0) model.scanStart = (start + visited) % count;
  if (explain) scored.sort((a, b) => b.score - a.score || (a.hostName < b.hostName ? -1 : 1));
  return {
    vm: {
      id: vm.object ? vm.id : null,
      name: vm.name,
      cpu: vm.cpu,
      memoryBytes: vm.memoryBytes,
      type: vm.type,
    },
    chosen: best,
    candidates: explain ? scored.slice(0, options.topCandidates ?? 10) : [],
    rejected,
    rejectedByReason,
    hostsConsidered: considered,
    feasibleHosts: feasible,
  };
}
