/**
 * Affinity rules need to know where the other members of a VM's group are.
 * For each rule in use this keeps, per group, how many members are present on
 * each host; built on first use (one pass over the VMs) and kept up to date as
 * the model places and moves VMs.
 */
import type { CompiledPolicy, CompiledRule } from '../policy/policy-document.js';
import type { PolicyEnv } from '../policy/language/compiler.js';
import { formatValue } from '../policy/language/values.js';
import type { SlotView, VmSlot } from './slots.js';

export interface RuleState {
  policy: CompiledPolicy;
  rule: CompiledRule;
  /** Member VM → its group key. */
  keyOf: Map<string, string>;
  /** Group key → host index → members present there. */
  presence: Map<string, Map<number, number>>;
}

export class RuleGroups {
  readonly #states = new Map<string, RuleState>();

  constructor(private readonly model: SlotView) {}

  /** The rule's groups, built now if this is their first use. */
  state(policy: CompiledPolicy, rule: CompiledRule): RuleState {
    const id = `${policy.id}/${rule.name}`;
    let state = this.#states.get(id);
    if (state) return state;
    state = { policy, rule, keyOf: new Map(), presence: new Map() };
    for (const vm of this.model.vms.values()) {
      const key = this.#membership(policy, rule, vm);
      if (key !== null) state.keyOf.set(vm.id, key);
    }
    for (const host of this.model.hosts)
      for (const vmId of host.vms) {
        const key = state.keyOf.get(vmId);
        if (key !== undefined) adjust(state, key, host.index, 1);
      }
    this.#states.set(id, state);
    return state;
  }

  /**
   * The group a VM falls in under a rule, or null: the policy's `when`, the
   * rule's `vms` selector and its `groupBy` (a null value means no group).
   * The policy's scope is the caller's concern.
   */
  keyFor(policy: CompiledPolicy, rule: CompiledRule, vm: VmSlot): string | null {
    const env: PolicyEnv = { vm: vm.facts, group: vm.groupFacts, user: this.model.requester };
    try {
      if (policy.when && policy.when.evaluate(env) !== true) return null;
      if (rule.vms && rule.vms.evaluate(env) !== true) return null;
      if (!rule.groupBy) return '';
      const value = rule.groupBy.evaluate(env);
      return value === null ? null : formatValue(value);
    } catch {
      return null; // a selector that fails on this VM's facts leaves it out of the rule
    }
  }

  occupy(vm: VmSlot, hostIndex: number): void {
    for (const state of this.#states.values()) {
      const key = state.keyOf.get(vm.id) ?? this.#adopt(state, vm);
      if (key !== undefined) adjust(state, key, hostIndex, 1);
    }
  }

  vacate(vm: VmSlot, hostIndex: number): void {
    for (const state of this.#states.values()) {
      const key = state.keyOf.get(vm.id);
      if (key !== undefined) adjust(state, key, hostIndex, -1);
    }
  }

  /** After a move: a rule scoped to a cluster or datacenter may now cover the VM, or no longer. */
  refresh(vm: VmSlot): void {
    for (const state of this.#states.values()) {
      const scope = state.policy.scope.kind;
      if (scope !== 'cluster' && scope !== 'datacenter') continue;
      const before = state.keyOf.get(vm.id);
      const after = this.#membership(state.policy, state.rule, vm) ?? undefined;
      if (before === after) continue;
      // Called once a move has landed: the VM is present at its home only.
      const hosts = vm.home >= 0 ? [vm.home] : [];
      for (const host of hosts) if (before !== undefined) adjust(state, before, host, -1);
      if (after === undefined) state.keyOf.delete(vm.id);
      else {
        state.keyOf.set(vm.id, after);
        for (const host of hosts) adjust(state, after, host, 1);
      }
    }
  }

  /** Members of the group present on the host, not counting the VM itself. */
  membersOn(state: RuleState, key: string, hostIndex: number, vm: VmSlot): number {
    const count = state.presence.get(key)?.get(hostIndex) ?? 0;
    return (
      count -
      (state.keyOf.get(vm.id) === key && this.model.hosts[hostIndex]?.vms.has(vm.id) ? 1 : 0)
    );
  }

  /** Hosts where other members of the group are present. */
  hostsOfOthers(state: RuleState, key: string, vm: VmSlot): number[] {
    const out: number[] = [];
    for (const [host, count] of state.presence.get(key) ?? [])
      if (
        count - (state.keyOf.get(vm.id) === key && this.model.hosts[host]?.vms.has(vm.id) ? 1 : 0) >
        0
      )
        out.push(host);
    return out;
  }

  /** Names of the other members present on a host, for explanations. */
  memberNamesOn(state: RuleState, key: string, hostIndex: number, vm: VmSlot, limit = 5): string[] {
    const names: string[] = [];
    for (const vmId of this.model.hosts[hostIndex]?.vms ?? []) {
      if (vmId === vm.id || state.keyOf.get(vmId) !== key) continue;
      names.push(this.model.vms.get(vmId)?.name ?? vmId);
      if (names.length >= limit) break;
    }
    return names;
  }

  /** A VM new to the model (placed for the first time) joins the groups it belongs to. */
  #adopt(state: RuleState, vm: VmSlot): string | undefined {
    const key = this.#membership(state.policy, state.rule, vm);
    if (key === null) return undefined;
    state.keyOf.set(vm.id, key);
    return key;
  }

  #membership(policy: CompiledPolicy, rule: CompiledRule, vm: VmSlot): string | null {
    return this.#covers(policy, vm) ? this.keyFor(policy, rule, vm) : null;
  }

  #covers(policy: CompiledPolicy, vm: VmSlot): boolean {
    const scope = policy.scope;
    switch (scope.kind) {
      case 'global':
        return true;
      case 'vm':
        return vm.id === scope.id;
      case 'resourceGroup':
        return vm.group?.id === scope.id;
      case 'cluster':
        return this.model.hosts[vm.home]?.cluster?.id === scope.id;
      case 'datacenter':
        return this.model.hosts[vm.home]?.datacenter?.id === scope.id;
    }
  }
}

function adjust(state: RuleState, key: string, hostIndex: number, delta: number): void {
  let hosts = state.presence.get(key);
  if (!hosts) state.presence.set(key, (hosts = new Map<number, number>()));
  const next = (hosts.get(hostIndex) ?? 0) + delta;
  if (next <= 0) hosts.delete(hostIndex);
  else hosts.set(hostIndex, next);
}
