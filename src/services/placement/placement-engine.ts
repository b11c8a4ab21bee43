/**
 * Chooses a host for one VM on a placement model: every host is checked in
 * one fixed order — state, connection, hypervisor type, capacity (with
 * overcommit), hard affinity rules, policy constraints — and the first check
 * that fails is the reason the host is rejected. The hosts that pass are
 * ranked: spread or pack, cost, soft rules, preferences. With `explain`, the
 * decision lists every rejected host with its reason and the best candidates
 * with their score broken down; without it nothing is allocated per host.
 */
import { isZenithError } from '../../core/errors.js';
import type { CompiledConstraint, CompiledPolicy, CompiledRule } from './policy-document.js';
import { defaultSettings, mergeSettings } from './policy-document.js';
import type { CompiledExpression, PolicyEnv } from './policy/compiler.js';
import type { Value } from './policy/ast.js';
import {
  liveHostFacts,
  loadOf,
  type HostSlot,
  type PlacementModel,
  type VmSlot,
} from './placement-model.js';
import type { RuleState } from './rule-groups.js';

export type RejectionReason =
  | { kind: 'current'; message: string }
  | { kind: 'state'; state: string; message: string }
  | { kind: 'connection'; message: string }
  | { kind: 'hypervisor'; vmType: string; hostTypes: readonly string[]; message: string }
  | {
      kind: 'capacity';
      resource: 'cpu' | 'memory';
      needed: number;
      free: number;
      capacity: number;
      overcommit: number;
      message: string;
    }
  | {
      kind: 'rule';
      policy: string;
      rule: string;
      ruleKind: string;
      conflicting: string[];
      message: string;
    }
  | { kind: 'constraint'; policy: string; constraint: string; expression: string; message: string }
  | {
      kind: 'error';
      policy: string;
      constraint: string;
      expression: string;
      error: { code: string; message: string; line?: unknown; column?: unknown };
      message: string;
    };

export interface Rejection {
  hostId: string;
  hostName: string;
  reason: RejectionReason;
}

export interface ScorePart {
  kind: 'strategy' | 'cost' | 'rule' | 'preference';
  name: string;
  policy?: string;
  value: number;
  weight: number;
  points: number;
}

export interface Candidate {
  hostId: string;
  hostName: string;
  score: number;
  loadAfter: number;
  breakdown?: ScorePart[];
}

export interface PlacementDecision {
  vm: { id: string | null; name: string; cpu: number; memoryBytes: number; type: string | null };
  chosen: Candidate | null;
  /** The best candidates, best first (explain only). */
  candidates: Candidate[];
  /** Every rejected host with the first check it failed (explain only). */
  rejected: Rejection[];
  rejectedByReason: Record<string, number>;
  hostsConsidered: number;
  feasibleHosts: number;
}

export interface PlaceOptions {
  explain?: boolean;
  /** How many ranked candidates an explanation lists. */
  topCandidates?: number;
  /** Hosts not to choose (the VM's own host when it is being moved). */
  exclude?: ReadonlySet<number>;
  /** Only hosts for which this holds are considered (a rebalancing scope). */
  within?: (host: HostSlot) => boolean;
}

interface ActiveRule {
  policy: CompiledPolicy;
  rule: CompiledRule;
  state: RuleState | null;
  key: string;
  hostSide: boolean;
}

interface ActiveConstraint {
  policy: CompiledPolicy;
  constraint: CompiledConstraint;
  /** Host-only and reading no live figure: its verdict per host can be kept. */
  cacheable: boolean;
}

const vmSideRoots = new Set(['vm', 'group', 'user']);
const hostSideRoots = new Set(['host', 'cluster', 'datacenter']);

/** Verdicts of host-only constraints, per host: undefined until first evaluated, null when it holds. */
const staticVerdicts = new WeakMap<
  PlacementModel,
  Map<CompiledExpression, Array<RejectionReason | null | undefined>>
>();

function verdictsFor(
  model: PlacementModel,
  expression: CompiledExpression,
): Array<RejectionReason | null | undefined> {
  let perModel = staticVerdicts.get(model);
  if (!perModel)
    staticVerdicts.set(
      model,
      (perModel = new Map<CompiledExpression, Array<RejectionReason | null | undefined>>()),
    );
  let verdicts = perModel.get(expression);
  if (!verdicts)
    perModel.set(
      expression,
      (verdicts = new Array<RejectionReason | null | undefined>(model.hosts.length)),
    );
  return verdicts;
}

function isCacheable(expression: CompiledExpression): boolean {
  for (const root of expression.roots) if (!hostSideRoots.has(root)) return false;
  for (const read of expression.reads) if (liveHostFacts.has(read)) return false;
  return true;
}

function onlyVm(expression: CompiledExpression): boolean {
  for (const root of expression.roots) if (!vmSideRoots.has(root)) return false;
  return true;
}

function whenHolds(policy: CompiledPolicy, env: PolicyEnv): boolean {
  if (!policy.when) return true;
  try {
    return policy.when.evaluate(env) === true;
  } catch {
    return false; // a `when` that fails on this VM's facts: the policy does not apply to it
  }
}

function formatBytes(bytes: number): string {
  const gib = bytes / 1024 ** 3;
  return gib >= 1 ? `${Number(gib.toFixed(1))} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;
}

/** Places one VM: the chosen host (or none) and, with `explain`, why every other host was not. */
export function placeVm(
  model: PlacementModel,
  vm: VmSlot,
  options: PlaceOptions = {},
): PlacementDecision {
  const explain = options.explain === true;
  const env: {
    vm: VmSlot['facts'];
    group: VmSlot['groupFacts'];
    user: PlacementModel['requester'];
    host?: HostSlot['facts'];
    cluster?: HostSlot['clusterFacts'];
    datacenter?: HostSlot['datacenterFacts'];
  } = { vm: vm.facts, group: vm.groupFacts, user: model.requester };

  // Per VM, once: the VM-side policies that apply, their rules and constraints.
  const vmPolicies = model.vmPolicies(vm).filter((policy) => whenHolds(policy, env));
  const hostPolicyApplies = new Map<CompiledPolicy, boolean>();
  const vmRules = rulesOf(model, vm, vmPolicies, false);
  const vmConstraints = constraintsOf(vmPolicies);
  // VM-only constraints do not depend on the host: decide them once.
  const vmOnlyFailure = new Map<CompiledConstraint, RejectionReason | null>();
  for (const entry of vmConstraints)
    if (onlyVm(entry.constraint.expression))
      vmOnlyFailure.set(entry.constraint, checkConstraint(entry, env));
  const hostRulesCache = new Map<readonly CompiledPolicy[], ActiveRule[]>();
  const hostConstraintsCache = new Map<readonly CompiledPolicy[], ActiveConstraint[]>();
  const settingsCache = new Map<readonly CompiledPolicy[], ReturnType<typeof scoringSettings>>();
  const existing = vm.object !== null;
  const costRange = model.costRange;

  const rejected: Rejection[] = [];
  const rejectedByReason: Record<string, number> = {};
  const scored: Candidate[] = [];
  let best: Candidate | null = null;
  let considered = 0;
  let feasible = 0;

  const reject = (
    host: HostSlot,
    reason: RejectionReason | (() => RejectionReason),
    kind: string,
  ) => {
    rejectedByReason[kind] = (rejectedByReason[kind] ?? 0) + 1;
    if (explain)
      rejected.push({
        hostId: host.id,
        hostName: host.name,
        reason: typeof reason === 'function' ? reason() : reason,
      });
  };

  for (const host of model.hosts) {
    if (options.within && !options.within(host)) continue;
    considered++;
    if (options.exclude?.has(host.index)) {
      reject(host, () => ({ kind: 'current', message: `${vm.name} runs here` }), 'current');
      continue;
    }
    if (host.state !== 'connected') {
      reject(
        host,
        () => ({
          kind: 'state',
          state: host.state,
          message:
            host.state === 'maintenance'
              ? `the host is in maintenance${host.mode === 'entering-maintenance' ? ' (being evacuated)' : ''}`
              : `the host is ${host.state}`,
        }),
        'state',
      );
      continue;
    }
    if (host.connectionId !== null) {
      const compatible = existing
        ? vm.connectionId !== null &&
          model.connections.canMigrate(vm.connectionId, host.connectionId)
        : model.connections.canCreate(host.connectionId);
      if (!compatible) {
        reject(
          host,
          () => ({
            kind: 'connection',
            message: existing
              ? 'the VM cannot migrate to a host of this connection (only within one connection, or between Zenith agents)'
              : "this host's connection cannot create VMs",
          }),
          'connection',
        );
        continue;
      }
    }
    if (vm.type !== null && host.vmTypes.length > 0 && !host.vmTypes.includes(vm.type)) {
      const vmType = vm.type;
      reject(
        host,
        () => ({
          kind: 'hypervisor',
          vmType,
          hostTypes: host.vmTypes,
          message: `a ${vmType} VM cannot run on a host that runs ${host.vmTypes.join(', ')}`,
        }),
        'hypervisor',
      );
      continue;
    }
    const here = host.vms.has(vm.id);
    const needCpu = vm.active && !here ? vm.cpu : 0;
    const needMemory = vm.active && !here ? vm.memoryBytes : 0;
    if (host.cpuUsed + needCpu > host.cpuCapacity) {
      reject(
        host,
        () => ({
          kind: 'capacity',
          resource: 'cpu',
          needed: vm.cpu,
          free: host.cpuCapacity - host.cpuUsed,
          capacity: host.cpuCapacity,
          overcommit: host.cpuOvercommit,
          message: `needs ${vm.cpu} vCPUs, ${Math.max(0, host.cpuCapacity - host.cpuUsed)} of ${host.cpuCapacity} free (${host.cpuCores} cores × overcommit ${host.cpuOvercommit})`,
        }),
        'capacity',
      );
      continue;
    }
    if (host.memoryUsed + needMemory > host.memoryCapacity) {
      reject(
        host,
        () => ({
          kind: 'capacity',
          resource: 'memory',
          needed: vm.memoryBytes,
          free: host.memoryCapacity - host.memoryUsed,
          capacity: host.memoryCapacity,
          overcommit: host.memoryOvercommit,
          message: `needs ${formatBytes(vm.memoryBytes)} of memory, ${formatBytes(Math.max(0, host.memoryCapacity - host.memoryUsed))} of ${formatBytes(host.memoryCapacity)} free (overcommit ${host.memoryOvercommit})`,
        }),
        'capacity',
      );
      continue;
    }

    env.host = host.facts;
    env.cluster = host.clusterFacts;
    env.datacenter = host.datacenterFacts;
    let hostPolicies: CompiledPolicy[] = [];
    if (host.policies.length > 0) {
      hostPolicies = host.policies.filter((policy) => {
        let applies = hostPolicyApplies.get(policy);
        if (applies === undefined)
          hostPolicyApplies.set(policy, (applies = whenHolds(policy, env)));
        return applies;
      });
    }
    let hostRules = hostRulesCache.get(host.policies);
    if (!hostRules)
      hostRulesCache.set(host.policies, (hostRules = rulesOf(model, vm, hostPolicies, true)));

    const ruleFailure =
      checkHardRules(model, vm, host, vmRules, explain) ??
      checkHardRules(model, vm, host, hostRules, explain);
    if (ruleFailure) {
      reject(host, ruleFailure, 'rule');
      continue;
    }

    let failure: RejectionReason | null = null;
    for (const entry of vmConstraints) {
      const known = vmOnlyFailure.get(entry.constraint);
      failure = known !== undefined ? known : checkConstraintAt(model, entry, env, host);
      if (failure) break;
    }
    if (!failure && hostPolicies.length > 0) {
      let hostConstraints = hostConstraintsCache.get(host.policies);
      if (!hostConstraints)
        hostConstraintsCache.set(host.policies, (hostConstraints = constraintsOf(hostPolicies)));
      for (const entry of hostConstraints) {
        failure = checkConstraintAt(model, entry, env, host);
        if (failure) break;
      }
    }
    if (failure) {
      reject(host, failure, failure.kind);
      continue;
    }

    feasible++;
    let settings = settingsCache.get(host.policies);
    if (!settings)
      settingsCache.set(
        host.policies,
        (settings = scoringSettings([...hostPolicies, ...vmPolicies])),
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
      softRules(model, vm, host, vmRules, parts) + softRules(model, vm, host, hostRules, parts);
    score += preferences(vmPolicies, env, parts) + preferences(hostPolicies, env, parts);

    const candidate: Candidate = {
      hostId: host.id,
      hostName: host.name,
      score,
      loadAfter,
      ...(parts ? { breakdown: parts } : {}),
    };
    if (explain) scored.push(candidate);
    if (!best || score > best.score) best = candidate;
  }

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

/** The settings that rank hosts for this VM there: strategy and the weights. */
function scoringSettings(policies: readonly CompiledPolicy[]) {
  const merged = mergeSettings(policies);
  return {
    strategy: merged.strategy ?? defaultSettings.strategy,
    strategyWeight: merged.strategyWeight ?? defaultSettings.strategyWeight,
    costWeight: merged.costWeight ?? defaultSettings.costWeight,
  };
}

function rulesOf(
  model: PlacementModel,
  vm: VmSlot,
  policies: readonly CompiledPolicy[],
  hostSide: boolean,
): ActiveRule[] {
  const out: ActiveRule[] = [];
  for (const policy of policies)
    for (const rule of policy.rules) {
      const key = model.rules.keyFor(policy, rule, vm);
      if (key === null) continue;
      const needsGroups = rule.kind === 'separate' || rule.kind === 'together';
      out.push({
        policy,
        rule,
        key,
        hostSide,
        state: needsGroups ? model.rules.state(policy, rule) : null,
      });
    }
  return out;
}

function constraintsOf(policies: readonly CompiledPolicy[]): ActiveConstraint[] {
  const out: ActiveConstraint[] = [];
  for (const policy of policies)
    for (const constraint of policy.constraints)
      out.push({ policy, constraint, cacheable: isCacheable(constraint.expression) });
  return out;
}

function checkConstraint(entry: ActiveConstraint, env: PolicyEnv): RejectionReason | null {
  const { policy, constraint } = entry;
  try {
    if (constraint.expression.evaluate(env) === true) return null;
    return {
      kind: 'constraint',
      policy: policy.name,
      constraint: constraint.name,
      expression: constraint.source,
      message: `constraint '${constraint.name}' of policy '${policy.name}' does not hold: ${constraint.source}`,
    };
  } catch (error) {
    const coded = isZenithError(error)
      ? {
          code: error.code,
          message: error.message,
          line: error.details.line,
          column: error.details.column,
        }
      : { code: 'ZEN_POLICY_EVALUATION', message: String(error) };
    return {
      kind: 'error',
      policy: policy.name,
      constraint: constraint.name,
      expression: constraint.source,
      error: coded,
      message: `constraint '${constraint.name}' of policy '${policy.name}' failed: ${coded.message}`,
    };
  }
}

function checkConstraintAt(
  model: PlacementModel,
  entry: ActiveConstraint,
  env: PolicyEnv,
  host: HostSlot,
): RejectionReason | null {
  if (!entry.cacheable) return checkConstraint(entry, env);
  const verdicts = verdictsFor(model, entry.constraint.expression);
  const known = verdicts[host.index];
  if (known !== undefined) return known;
  const failure = checkConstraint(entry, env);
  verdicts[host.index] = failure;
  return failure;
}

function checkHardRules(
  model: PlacementModel,
  vm: VmSlot,
  host: HostSlot,
  rules: readonly ActiveRule[],
  explain: boolean,
): RejectionReason | null {
  for (const active of rules) {
    const { rule, policy } = active;
    if (!rule.hard) continue;
    const reason = (detail: string, conflicting: string[] = []): RejectionReason => ({
      kind: 'rule',
      policy: policy.name,
      rule: rule.name,
      ruleKind: rule.kind,
      conflicting,
      message: `rule '${rule.name}' of policy '${policy.name}' (${rule.kind}): ${detail}`,
    });
    switch (rule.kind) {
      case 'separate': {
        if (model.rules.membersOn(active.state!, active.key, host.index, vm) > 0) {
          const names = explain
            ? model.rules.memberNamesOn(active.state!, active.key, host.index, vm)
            : [];
          return reason(
            `keeps ${groupLabel(active)} apart, and ${names.join(', ') || 'another member'} runs here`,
            names,
          );
        }
        break;
      }
      case 'together': {
        const hosts = model.rules.hostsOfOthers(active.state!, active.key, vm);
        if (hosts.length > 0 && !hosts.includes(host.index)) {
          const names = explain
            ? model.rules.memberNamesOn(active.state!, active.key, hosts[0]!, vm)
            : [];
          return reason(
            `keeps ${groupLabel(active)} together, on ${model.hosts[hosts[0]!]?.name ?? 'another host'}`,
            names,
          );
        }
        break;
      }
      case 'onHosts':
      case 'offHosts': {
        const onIt = hostMatches(rule, host);
        if (onIt !== (rule.kind === 'onHosts'))
          return reason(
            rule.kind === 'onHosts'
              ? 'this host is not one of its hosts'
              : 'this host is one it must avoid',
          );
        break;
      }
    }
  }
  return null;
}

function groupLabel(active: ActiveRule): string {
  return active.key === '' ? 'its VMs' : `the VMs of group ${active.key}`;
}

function hostMatches(rule: CompiledRule, host: HostSlot): boolean {
  try {
    return (
      rule.hosts?.evaluate({
        host: host.facts,
        cluster: host.clusterFacts,
        datacenter: host.datacenterFacts,
      }) === true
    );
  } catch {
    return false;
  }
}

function softRules(
  model: PlacementModel,
  vm: VmSlot,
  host: HostSlot,
  rules: readonly ActiveRule[],
  parts: ScorePart[] | undefined,
): number {
  let total = 0;
  for (const active of rules) {
    const { rule, policy } = active;
    if (rule.hard) continue;
    let value = 0;
    switch (rule.kind) {
      case 'separate':
        value = -model.rules.membersOn(active.state!, active.key, host.index, vm);
        break;
      case 'together':
        value = model.rules.membersOn(active.state!, active.key, host.index, vm) > 0 ? 1 : 0;
        break;
      case 'onHosts':
        value = hostMatches(rule, host) ? 1 : 0;
        break;
      case 'offHosts':
        value = hostMatches(rule, host) ? -1 : 0;
        break;
    }
    total += value * rule.weight;
    parts?.push({
      kind: 'rule',
      name: rule.name,
      policy: policy.name,
      value,
      weight: rule.weight,
      points: value * rule.weight,
    });
  }
  return total;
}

function preferences(
  policies: readonly CompiledPolicy[],
  env: PolicyEnv,
  parts: ScorePart[] | undefined,
): number {
  let total = 0;
  for (const policy of policies)
    for (const preference of policy.preferences) {
      let value: Value;
      try {
        value = preference.expression.evaluate(env);
      } catch {
        value = null; // a preference that fails here counts nothing
      }
      const number =
        typeof value === 'number' && Number.isFinite(value) ? value : value === true ? 1 : 0;
      total += number * preference.weight;
      parts?.push({
        kind: 'preference',
        name: preference.name,
        policy: policy.name,
        value: number,
        weight: preference.weight,
        points: number * preference.weight,
      });
    }
  return total;
}
