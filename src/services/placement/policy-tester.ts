/**
 * Testing a policy against the live inventory before it is saved: which VMs
 * it applies to, which of them break a constraint or a rule where they run
 * now (and on which facts an expression fails), what the preferences give,
 * and — for a named VM — where placement would put it with the policy in
 * force. A single expression can be tried too, on one VM and host or across
 * the fleet.
 */
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { PlacementDecision } from './placement-engine.js';
import type { HostSlot, PlacementModel, VmSlot } from './placement-model.js';
import { previewOn } from './placement-service.js';
import type { CompiledPolicy } from '../policy/policy-document.js';
import type { PolicyIndex } from '../policy/policy-service.js';
import { placementRoots, type Value } from '../policy/language/ast.js';
import { compileExpression, type PolicyEnv } from '../policy/language/compiler.js';
import { formatValue } from '../policy/language/values.js';

interface ObjectRef {
  vmId: string;
  vmName: string;
  hostId: string | null;
  hostName: string | null;
}

interface Failure extends ObjectRef {
  code: string;
  message: string;
  line: number | null;
  column: number | null;
}

export interface PolicyTestResult {
  policy: { name: string; scope: { kind: string; id: string | null } };
  appliesTo: { vms: number; sample: string[] };
  constraints: Array<{
    name: string;
    expression: string;
    holds: number;
    violated: number;
    failed: number;
    violations: ObjectRef[];
    failures: Failure[];
  }>;
  rules: Array<{
    name: string;
    kind: string;
    hard: boolean;
    members: number;
    groups: number;
    violations: Array<ObjectRef & { detail: string }>;
  }>;
  preferences: Array<{
    name: string;
    weight: number;
    min: number | null;
    max: number | null;
    mean: number | null;
    failed: number;
  }>;
  placement: PlacementDecision | null;
}

export interface ExpressionTestResult {
  expression: string;
  type: string;
  reads: string[];
  /** One object pair: its value. */
  value?: unknown;
  /** Across the fleet: how many were evaluated, counts by value, a sample of those that gave true. */
  evaluated?: number;
  over?: 'vms' | 'hosts';
  counts?: Array<{ value: string; count: number }>;
  matches?: string[];
  failures?: Failure[];
}

/** The policy index with a draft in force (replacing a saved policy of the same name). */
export function withDraft(index: PolicyIndex, draft: CompiledPolicy): PolicyIndex {
  const keep = (list: readonly CompiledPolicy[]) => list.filter((p) => p.name !== draft.name);
  const byScopeId = new Map<string, CompiledPolicy[]>();
  for (const [id, list] of index.byScopeId) byScopeId.set(id, keep(list));
  const global = keep(index.global);
  if (draft.enabled) {
    if (draft.scope.id === null) global.push(draft);
    else byScopeId.set(draft.scope.id, [...(byScopeId.get(draft.scope.id) ?? []), draft]);
  }
  return { global, byScopeId, version: index.version + 1 };
}

function covers(policy: CompiledPolicy, vm: VmSlot, host: HostSlot | undefined): boolean {
  switch (policy.scope.kind) {
    case 'global':
      return true;
    case 'vm':
      return vm.id === policy.scope.id;
    case 'resourceGroup':
      return vm.group?.id === policy.scope.id;
    case 'cluster':
      return host?.cluster?.id === policy.scope.id;
    case 'datacenter':
      return host?.datacenter?.id === policy.scope.id;
  }
}

/** What a policy's conditions read of a VM on a host (or on no host yet): the facts of both and their scopes. */
export function policyEnvOf(
  model: PlacementModel,
  vm: VmSlot,
  host: HostSlot | undefined,
): PolicyEnv {
  return {
    vm: vm.facts,
    group: vm.groupFacts,
    user: model.requester,
    host: host?.facts,
    cluster: host?.clusterFacts,
    datacenter: host?.datacenterFacts,
  };
}

function refOf(vm: VmSlot, host: HostSlot | undefined): ObjectRef {
  return { vmId: vm.id, vmName: vm.name, hostId: host?.id ?? null, hostName: host?.name ?? null };
}

function failureOf(ref: ObjectRef, error: unknown): Failure {
  if (!isZenithError(error)) throw error;
  return {
    ...ref,
    code: error.code,
    message: error.message,
    line: typeof error.details.line === 'number' ? error.details.line : null,
    column: typeof error.details.column === 'number' ? error.details.column : null,
  };
}

/** Evaluates a draft policy over the VMs where they run now; `model` must have the draft in force. */
export function testPolicy(
  model: PlacementModel,
  inventory: InventoryService,
  policy: CompiledPolicy,
  options: { vm?: string; limit: number },
): PolicyTestResult {
  const limit = options.limit;
  const applying: Array<{ vm: VmSlot; host: HostSlot | undefined; env: PolicyEnv }> = [];
  for (const vm of model.vms.values()) {
    const host = vm.home >= 0 ? model.hosts[vm.home] : undefined;
    if (!covers(policy, vm, host)) continue;
    const env = policyEnvOf(model, vm, host);
    try {
      if (policy.when && policy.when.evaluate(env) !== true) continue;
    } catch {
      continue;
    }
    applying.push({ vm, host, env });
  }
  applying.sort((a, b) => (a.vm.name < b.vm.name ? -1 : a.vm.name > b.vm.name ? 1 : 0));

  const constraints = policy.constraints.map((constraint) => {
    const result = {
      name: constraint.name,
      expression: constraint.source,
      holds: 0,
      violated: 0,
      failed: 0,
      violations: [] as ObjectRef[],
      failures: [] as Failure[],
    };
    for (const { vm, host, env } of applying) {
      if (!host) continue;
      try {
        if (constraint.expression.evaluate(env) === true) result.holds++;
        else {
          result.violated++;
          if (result.violations.length < limit) result.violations.push(refOf(vm, host));
        }
      } catch (error) {
        result.failed++;
        if (result.failures.length < limit) result.failures.push(failureOf(refOf(vm, host), error));
      }
    }
    return result;
  });

  const rules = policy.rules.map((rule) => {
    const result = {
      name: rule.name,
      kind: rule.kind,
      hard: rule.hard,
      members: 0,
      groups: 0,
      violations: [] as Array<ObjectRef & { detail: string }>,
    };
    const groups = new Map<string, Array<{ vm: VmSlot; host: HostSlot | undefined }>>();
    for (const { vm, host } of applying) {
      const key = model.rules.keyFor(policy, rule, vm);
      if (key === null) continue;
      result.members++;
      if (rule.kind === 'onHosts' || rule.kind === 'offHosts') {
        if (!host) continue;
        let onIt: boolean;
        try {
          onIt =
            rule.hosts?.evaluate({
              host: host.facts,
              cluster: host.clusterFacts,
              datacenter: host.datacenterFacts,
            }) === true;
        } catch {
          onIt = false;
        }
        if (onIt !== (rule.kind === 'onHosts') && result.violations.length < limit)
          result.violations.push({
            ...refOf(vm, host),
            detail:
              rule.kind === 'onHosts'
                ? `runs on ${host.name}, which is not one of the rule's hosts`
                : `runs on ${host.name}, which the rule avoids`,
          });
        continue;
      }
      const members = groups.get(key) ?? [];
      members.push({ vm, host });
      groups.set(key, members);
    }
    result.groups = groups.size;
    for (const [key, members] of groups) {
      const label = key === '' ? '' : ` (group ${key})`;
      if (rule.kind === 'separate') {
        const byHost = new Map<string, string[]>();
        for (const { vm, host } of members) {
          if (!host) continue;
          const seen = byHost.get(host.id) ?? [];
          if (seen.length > 0 && result.violations.length < limit)
            result.violations.push({
              ...refOf(vm, host),
              detail: `shares ${host.name} with ${seen.join(', ')}${label}`,
            });
          seen.push(vm.name);
          byHost.set(host.id, seen);
        }
      } else {
        const hosts = new Set(members.map((m) => m.host?.id ?? null).filter((h) => h !== null));
        if (hosts.size > 1 && result.violations.length < limit) {
          const first = members[0]!;
          result.violations.push({
            ...refOf(first.vm, first.host),
            detail: `its group${label} is spread over ${hosts.size} hosts`,
          });
        }
      }
    }
    return result;
  });

  const preferences = policy.preferences.map((preference) => {
    let min: number | null = null;
    let max: number | null = null;
    let sum = 0;
    let count = 0;
    let failed = 0;
    for (const { host, env } of applying) {
      if (!host) continue;
      let value: Value;
      try {
        value = preference.expression.evaluate(env);
      } catch {
        failed++;
        continue;
      }
      const number = typeof value === 'number' ? value : value === true ? 1 : 0;
      min = min === null ? number : Math.min(min, number);
      max = max === null ? number : Math.max(max, number);
      sum += number;
      count++;
    }
    return {
      name: preference.name,
      weight: preference.weight,
      min,
      max,
      mean: count > 0 ? sum / count : null,
      failed,
    };
  });

  return {
    policy: { name: policy.name, scope: policy.scope },
    appliesTo: { vms: applying.length, sample: applying.slice(0, limit).map((a) => a.vm.name) },
    constraints,
    rules,
    preferences,
    placement: options.vm ? previewOn(model, inventory, { vm: options.vm, explain: true }) : null,
  };
}

/** Evaluates one expression: on a VM and a host, or across the fleet. */
export function testExpression(
  model: PlacementModel,
  inventory: InventoryService,
  source: string,
  options: { vm?: string; host?: string; limit: number },
): ExpressionTestResult {
  const compiled = compileExpression(source, { allowedRoots: [...placementRoots] });
  const base = { expression: source, type: compiled.type, reads: [...compiled.reads].sort() };
  const vmObject = options.vm ? inventory.resolve('vm', options.vm) : undefined;
  const hostObject = options.host ? inventory.resolve('host', options.host) : undefined;
  const slotOf = (object: ManagedObject): VmSlot => {
    const slot = model.vms.get(object.id);
    if (!slot)
      throw new ZenithError('ZEN_INVALID_STATE', `${object.name} is missing`, { vmId: object.id });
    return slot;
  };
  if (vmObject || hostObject) {
    const vm = vmObject ? slotOf(vmObject) : undefined;
    const host = hostObject
      ? model.host(hostObject.id)
      : vm && vm.home >= 0
        ? model.hosts[vm.home]
        : undefined;
    const env: PolicyEnv = vm
      ? policyEnvOf(model, vm, host)
      : {
          user: model.requester,
          host: host?.facts,
          cluster: host?.clusterFacts,
          datacenter: host?.datacenterFacts,
        };
    return { ...base, value: compiled.evaluate(env) };
  }
  const roots = compiled.roots as ReadonlySet<string>;
  const readsVm = roots.has('vm') || roots.has('group');
  const readsHost = roots.has('host') || roots.has('cluster') || roots.has('datacenter');
  if (!readsVm && !readsHost)
    return { ...base, value: compiled.evaluate({ user: model.requester }) };
  const counts = new Map<string, number>();
  const matches: string[] = [];
  const failures: Failure[] = [];
  let evaluated = 0;
  const record = (label: string, ref: ObjectRef, evaluate: () => Value) => {
    evaluated++;
    try {
      const value = evaluate();
      const key = formatValue(value);
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (value === true && matches.length < options.limit) matches.push(label);
    } catch (error) {
      if (failures.length < options.limit) failures.push(failureOf(ref, error));
    }
  };
  if (readsVm) {
    const vms = [...model.vms.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const vm of vms) {
      const host = vm.home >= 0 ? model.hosts[vm.home] : undefined;
      record(vm.name, refOf(vm, host), () => compiled.evaluate(policyEnvOf(model, vm, host)));
    }
  } else {
    for (const host of model.hosts)
      record(host.name, { vmId: '', vmName: '', hostId: host.id, hostName: host.name }, () =>
        compiled.evaluate({
          user: model.requester,
          host: host.facts,
          cluster: host.clusterFacts,
          datacenter: host.datacenterFacts,
        }),
      );
  }
  return {
    ...base,
    over: readsVm ? 'vms' : 'hosts',
    evaluated,
    counts: [...counts.entries()]
      .map(([value, count]) => ({ value, count }))
      .sort((a, b) => b.count - a.count)
      .slice(0, 20),
    matches,
    failures,
  };
}
