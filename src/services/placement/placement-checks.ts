/**
 * The checks and scores placement applies to one VM on one host: affinity
 * rules, policy constraints (with per-host verdicts kept for host-only
 * ones), soft rules and preferences; and the shapes explanations take.
 */
import { isZenithError } from '../../core/errors.js';
import type {
  CompiledConstraint,
  CompiledPolicy,
  CompiledRule,
} from '../policy/policy-document.js';
import { defaultSettings, mergeSettings } from '../policy/policy-document.js';
import type { CompiledExpression, PolicyEnv } from '../policy/language/compiler.js';
import type { Value } from '../policy/language/ast.js';
import { liveHostFacts, type PlacementModel } from './placement-model.js';
import type { HostSlot, VmSlot } from './slots.js';
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

export interface ActiveRule {
  policy: CompiledPolicy;
  rule: CompiledRule;
  state: RuleState | null;
  key: string;
  hostSide: boolean;
}

export interface ActiveConstraint {
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

export function isCacheable(expression: CompiledExpression): boolean {
  for (const root of expression.roots) if (!hostSideRoots.has(root)) return false;
  for (const read of expression.reads) if (liveHostFacts.has(read)) return false;
  return true;
}

export function onlyVm(expression: CompiledExpression): boolean {
  for (const root of expression.roots) if (!vmSideRoots.has(root)) return false;
  return true;
}

export function whenHolds(policy: CompiledPolicy, env: PolicyEnv): boolean {
  if (!policy.when) return true;
  try {
    return policy.when.evaluate(env) === true;
  } catch {
    return false; // a `when` that fails on this VM's facts: the policy does not apply to it
  }
}

export function formatBytes(bytes: number): string {
  const gib = bytes / 1024 ** 3;
  return gib >= 1 ? `${Number(gib.toFixed(1))} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;
}

/** The settings that rank hosts for this VM there: strategy and the weights. */
export function scoringSettings(policies: readonly CompiledPolicy[]) {
  const merged = mergeSettings(policies);
  return {
    strategy: merged.strategy ?? defaultSettings.strategy,
    strategyWeight: merged.strategyWeight ?? defaultSettings.strategyWeight,
    costWeight: merged.costWeight ?? defaultSettings.costWeight,
  };
}

export function rulesOf(
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

export function constraintsOf(policies: readonly CompiledPolicy[]): ActiveConstraint[] {
  const out: ActiveConstraint[] = [];
  for (const policy of policies)
    for (const constraint of policy.constraints)
      out.push({ policy, constraint, cacheable: isCacheable(constraint.expression) });
  return out;
}

export function checkConstraint(entry: ActiveConstraint, env: PolicyEnv): RejectionReason | null {
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

export function checkConstraintAt(
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

function ruleReason(
  active: ActiveRule,
  detail: string,
  conflicting: string[] = [],
): RejectionReason {
  const { rule, policy } = active;
  return {
    kind: 'rule',
    policy: policy.name,
    rule: rule.name,
    ruleKind: rule.kind,
    conflicting,
    message: `rule '${rule.name}' of policy '${policy.name}' (${rule.kind}): ${detail}`,
  };
}

export function checkHardRules(
  model: PlacementModel,
  vm: VmSlot,
  host: HostSlot,
  rules: readonly ActiveRule[],
  explain: boolean,
): RejectionReason | null {
  for (const active of rules) {
    const { rule } = active;
    if (!rule.hard) continue;
    switch (rule.kind) {
      case 'separate': {
        if (model.rules.membersOn(active.state!, active.key, host.index, vm) > 0) {
          const names = explain
            ? model.rules.memberNamesOn(active.state!, active.key, host.index, vm)
            : [];
          return ruleReason(
            active,
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
          return ruleReason(
            active,
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
          return ruleReason(
            active,
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

export function softRules(
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

export function preferences(
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
