/**
 * A policy as users write it (constraints, weighted preferences, affinity
 * rules, settings, a scope) and as placement uses it: every expression
 * compiled, every setting checked. Compiling is where a policy is refused:
 * errors carry the field (`constraints[1].expression`) besides line and column.
 */
import { isZenithError, ZenithError } from '../../core/errors.js';
import { placementRoots, type Root } from './language/ast.js';
import {
  compileCondition,
  compileExpression,
  compileScore,
  type CompiledExpression,
} from './language/compiler.js';

export const scopeKinds = ['global', 'datacenter', 'cluster', 'resourceGroup', 'vm'] as const;
export type ScopeKind = (typeof scopeKinds)[number];

/** Most general first: settings of a later scope override an earlier one. */
export const scopeOrder: Record<ScopeKind, number> = {
  global: 0,
  datacenter: 1,
  cluster: 2,
  resourceGroup: 3,
  vm: 4,
};

export const ruleKinds = ['separate', 'together', 'onHosts', 'offHosts'] as const;
export type RuleKind = (typeof ruleKinds)[number];

export interface NamedExpression {
  name: string;
  expression: string;
}

export interface PreferenceInput extends NamedExpression {
  /** Multiplies the expression's value; negative prefers low values. */
  weight: number;
}

export interface RuleInput {
  name: string;
  kind: RuleKind;
  /** Which VMs the rule is about (vm.*, group.*); all VMs the policy applies to when absent. */
  vms?: string;
  /** separate/together: VMs with the same non-null value form one group; one group when absent. */
  groupBy?: string;
  /** onHosts/offHosts: which hosts (host.*, cluster.*, datacenter.*). */
  hosts?: string;
  /** Hard rules must hold; soft ones rank hosts. */
  hard: boolean;
  /** Soft rules: how much they count. */
  weight?: number;
}

export interface MigrationSettings {
  /** Concurrent migrations one host may send plus receive. */
  maxPerHost?: number;
  /** Concurrent migrations in one plan. */
  maxTotal?: number;
  /** What a host's migration network carries, in and out, when the host does not say. */
  hostBandwidthBytesPerSecond?: number;
  /** Between clusters of one datacenter, shared by all migrations crossing it. */
  interClusterBandwidthBytesPerSecond?: number;
  /** Between datacenters, shared by all migrations crossing it. */
  interDatacenterBandwidthBytesPerSecond?: number;
  /** The switch-over pause a migration aims for. */
  maxDowntimeMs?: number;
  /** Memory a running VM dirties per second when it does not report its own rate. */
  defaultDirtyBytesPerSecond?: number;
}

/** Running the rebalancer on a schedule (global policies only). */
export interface RebalanceScheduleSettings {
  everyMinutes: number;
  mode?: 'balance' | 'consolidate';
  /** Apply the plan at once; otherwise it waits, proposed, for someone to apply it. */
  automatic?: boolean;
  maxMoves?: number;
  minBenefit?: number;
}

/** Power management of hosts with BMCs (host side; off unless enabled). */
export interface PowerManagementSettings {
  enabled: boolean;
  /** Hosts kept on in the scope, however empty (default 1). */
  minHostsOn?: number;
  /** How a host is powered off: shutdown (ACPI, default) or off. */
  action?: 'shutdown' | 'off';
  /**
   * A host on above this load (0–1, default 0.8) makes a run power a host in standby on and
   * balance onto it; consolidation fills hosts up to it.
   */
  highLoad?: number;
  /** Run power management every so many minutes (global policies only); absent: on request. */
  everyMinutes?: number;
}

export const haPriorities = ['highest', 'high', 'medium', 'low', 'lowest', 'disabled'] as const;
export type HaPriority = (typeof haPriorities)[number];
export const isolationResponses = ['leave-running', 'shutdown', 'power-off'] as const;
export type IsolationResponse = (typeof isolationResponses)[number];

/**
 * High availability (off unless enabled). Set per cluster (or datacenter, or everywhere) and
 * overridden per resource group and per VM, field by field; hostFailuresToTolerate and the timings
 * are about hosts, so only global, datacenter and cluster policies set them.
 */
export interface HaSettings {
  enabled?: boolean;
  /** The order restarts go in (highest first); disabled: the VM is not restarted. Default medium. */
  restartPriority?: HaPriority;
  /**
   * Restart order group: VMs of a lower group are running (or restartOrderTimeoutSeconds passed)
   * before any VM of a higher one starts. Default 1.
   */
  restartOrder?: number;
  /** How long a restart order group is waited for before the next starts anyway (default 120 s). */
  restartOrderTimeoutSeconds?: number;
  /** What an agent that lost the control plane but not its storage does with its VMs. */
  isolationResponse?: IsolationResponse;
  /** Restart a VM whose hypervisor process died or whose guest panicked (never a clean shutdown). */
  vmMonitoring?: { enabled: boolean; maxRestarts?: number; windowMinutes?: number };
  /** Admission control: refuse what would leave a failure of this many hosts unrecoverable. */
  hostFailuresToTolerate?: number;
  /** A host whose channel and storage heartbeats both stopped this long is failed (default 3 s). */
  failureDetectionSeconds?: number;
  /**
   * An agent that lost both the control plane and its storage heartbeat this long kills its VMs;
   * a host without a BMC is restarted from only once its lease has been expired this long
   * (default 10 s).
   */
  selfFenceSeconds?: number;
}

/** HA settings only global, datacenter and cluster policies set (about hosts, not VMs). */
export const haHostSettings = [
  'hostFailuresToTolerate',
  'failureDetectionSeconds',
  'selfFenceSeconds',
] as const;

/**
 * Replication by policy (off unless enabled): every VM the policy is in force for is replicated to
 * a host of `targetSite` (the site's host that holds the fewest replicas and can keep them) with
 * these settings, by the replication service's identity. Field by field like `ha`; a VM
 * replicated already keeps its own settings.
 */
export interface ReplicationPolicySettings {
  enabled?: boolean;
  /** The site (name or id) the VMs are replicated to. */
  targetSite?: string;
  rpoSeconds?: number;
  intervalSeconds?: number;
  keepPoints?: number;
  /** interval (default) or sync. */
  mode?: 'interval' | 'sync';
}

export interface PolicySettings {
  cpuOvercommit?: number;
  memoryOvercommit?: number;
  strategy?: 'spread' | 'pack';
  strategyWeight?: number;
  costWeight?: number;
  migration?: MigrationSettings;
  rebalance?: RebalanceScheduleSettings;
  powerManagement?: PowerManagementSettings;
  ha?: HaSettings;
  replication?: ReplicationPolicySettings;
}

export interface PolicyScope {
  kind: ScopeKind;
  /** The object's id (null for global). */
  id: string | null;
}

export interface PolicyInput {
  name: string;
  description?: string;
  enabled?: boolean;
  scope: { kind: ScopeKind; id?: string };
  when?: string;
  constraints?: NamedExpression[];
  preferences?: PreferenceInput[];
  rules?: RuleInput[];
  settings?: PolicySettings;
}

export interface CompiledConstraint {
  name: string;
  source: string;
  expression: CompiledExpression;
}

export interface CompiledPreference extends CompiledConstraint {
  weight: number;
}

export interface CompiledRule {
  name: string;
  kind: RuleKind;
  vms: CompiledExpression | null;
  groupBy: CompiledExpression | null;
  hosts: CompiledExpression | null;
  hard: boolean;
  weight: number;
}

export interface CompiledPolicy {
  id: string;
  name: string;
  scope: PolicyScope;
  enabled: boolean;
  when: CompiledExpression | null;
  constraints: CompiledConstraint[];
  preferences: CompiledPreference[];
  rules: CompiledRule[];
  settings: PolicySettings;
}

export const policyName = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;

const vmRoots: Root[] = ['vm', 'group', 'user'];
const hostRoots: Root[] = ['host', 'cluster', 'datacenter'];
/** Settings about hosts: they may be set only where hosts are (global, datacenter, cluster). */
export const hostSideSettings: Array<keyof PolicySettings> = [
  'cpuOvercommit',
  'memoryOvercommit',
  'migration',
  'powerManagement',
];

const limits = {
  constraints: 64,
  preferences: 64,
  rules: 32,
};

export const defaultSettings = {
  cpuOvercommit: 4,
  memoryOvercommit: 1,
  strategy: 'spread' as 'spread' | 'pack',
  strategyWeight: 1,
  costWeight: 0.5,
};

export const defaultMigrationSettings: Required<MigrationSettings> = {
  maxPerHost: 2,
  maxTotal: 8,
  hostBandwidthBytesPerSecond: 1.25e9,
  interClusterBandwidthBytesPerSecond: 2.5e9,
  interDatacenterBandwidthBytesPerSecond: 1.25e8,
  maxDowntimeMs: 300,
  defaultDirtyBytesPerSecond: 16 * 1024 * 1024,
};

function invalid(field: string, reason: string, extra: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('ZEN_POLICY_INVALID', `${field}: ${reason}`, { field, reason, ...extra });
}

/** Compiles one expression of a policy, naming the field in any refusal. */
function compileField(
  field: string,
  source: string,
  compile: typeof compileExpression,
  allowedRoots: Root[] | undefined,
  purpose: string,
): CompiledExpression {
  try {
    return compile(source, { allowedRoots: allowedRoots ?? [...placementRoots], purpose });
  } catch (error) {
    if (isZenithError(error))
      throw new ZenithError(error.code, `${field}: ${error.message}`, {
        ...error.details,
        field,
      });
    throw error;
  }
}

function checkNumber(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max)
    throw invalid(field, `must be a number from ${min} to ${max}`, { value });
  return value;
}

function checkNames(field: string, items: Array<{ name: string }>, max: number): void {
  if (items.length > max) throw invalid(field, `at most ${max} entries`);
  const seen = new Set<string>();
  items.forEach((item, index) => {
    if (!policyName.test(item.name))
      throw invalid(
        `${field}[${index}].name`,
        `'${item.name}' is not a valid name (letters, digits, . _ -, at most 64)`,
      );
    if (seen.has(item.name))
      throw invalid(`${field}[${index}].name`, `'${item.name}' is used twice`);
    seen.add(item.name);
  });
}

function checkReplication(replication: ReplicationPolicySettings): void {
  const field = 'settings.replication';
  if (replication.enabled !== undefined && typeof replication.enabled !== 'boolean')
    throw invalid(`${field}.enabled`, 'must be true or false');
  if (
    replication.enabled &&
    (replication.targetSite === undefined || replication.rpoSeconds === undefined)
  )
    throw invalid(field, 'replication by policy names its targetSite and rpoSeconds');
  if (replication.rpoSeconds !== undefined)
    checkNumber(`${field}.rpoSeconds`, replication.rpoSeconds, 60, 86_400);
  if (replication.intervalSeconds !== undefined) {
    checkNumber(`${field}.intervalSeconds`, replication.intervalSeconds, 5, 86_400);
    if (
      replication.rpoSeconds !== undefined &&
      replication.intervalSeconds > replication.rpoSeconds
    )
      throw invalid(
        `${field}.intervalSeconds`,
        `an interval of ${replication.intervalSeconds} s cannot meet an RPO of ${replication.rpoSeconds} s`,
      );
  }
  if (replication.keepPoints !== undefined)
    checkNumber(`${field}.keepPoints`, replication.keepPoints, 1, 24);
  if (replication.mode !== undefined && !['interval', 'sync'].includes(replication.mode))
    throw invalid(`${field}.mode`, "is 'interval' or 'sync'");
}

function checkHa(ha: HaSettings, scope: ScopeKind): void {
  if (ha.enabled !== undefined && typeof ha.enabled !== 'boolean')
    throw invalid('settings.ha.enabled', 'must be true or false');
  if (ha.restartPriority !== undefined && !haPriorities.includes(ha.restartPriority))
    throw invalid('settings.ha.restartPriority', `is one of ${haPriorities.join(', ')}`);
  if (ha.isolationResponse !== undefined && !isolationResponses.includes(ha.isolationResponse))
    throw invalid('settings.ha.isolationResponse', `is one of ${isolationResponses.join(', ')}`);
  if (ha.restartOrder !== undefined)
    checkNumber('settings.ha.restartOrder', ha.restartOrder, 1, 100);
  if (ha.restartOrderTimeoutSeconds !== undefined)
    checkNumber('settings.ha.restartOrderTimeoutSeconds', ha.restartOrderTimeoutSeconds, 0, 3600);
  if (ha.vmMonitoring) {
    if (typeof ha.vmMonitoring.enabled !== 'boolean')
      throw invalid('settings.ha.vmMonitoring.enabled', 'must be true or false');
    if (ha.vmMonitoring.maxRestarts !== undefined)
      checkNumber('settings.ha.vmMonitoring.maxRestarts', ha.vmMonitoring.maxRestarts, 0, 100);
    if (ha.vmMonitoring.windowMinutes !== undefined)
      checkNumber(
        'settings.ha.vmMonitoring.windowMinutes',
        ha.vmMonitoring.windowMinutes,
        1,
        10_080,
      );
  }
  for (const key of haHostSettings)
    if (ha[key] !== undefined && !['global', 'datacenter', 'cluster'].includes(scope))
      throw invalid(
        `settings.ha.${key}`,
        `is about hosts: set it on a global, datacenter or cluster policy, not on a ${scope} one`,
      );
  if (ha.hostFailuresToTolerate !== undefined)
    checkNumber('settings.ha.hostFailuresToTolerate', ha.hostFailuresToTolerate, 0, 100);
  if (ha.failureDetectionSeconds !== undefined)
    checkNumber('settings.ha.failureDetectionSeconds', ha.failureDetectionSeconds, 1, 600);
  if (ha.selfFenceSeconds !== undefined)
    checkNumber('settings.ha.selfFenceSeconds', ha.selfFenceSeconds, 2, 3600);
}

export function checkSettings(settings: PolicySettings, scope: ScopeKind): PolicySettings {
  for (const key of Object.keys(settings) as Array<keyof PolicySettings>)
    if (hostSideSettings.includes(key) && !['global', 'datacenter', 'cluster'].includes(scope))
      throw invalid(
        `settings.${key}`,
        `is about hosts: set it on a global, datacenter or cluster policy, not on a ${scope} one`,
      );
  if (settings.rebalance) {
    if (scope !== 'global')
      throw invalid('settings.rebalance', 'the rebalancing schedule is set on a global policy');
    checkNumber('settings.rebalance.everyMinutes', settings.rebalance.everyMinutes, 1, 10_080);
    if (settings.rebalance.maxMoves !== undefined)
      checkNumber('settings.rebalance.maxMoves', settings.rebalance.maxMoves, 1, 10_000);
    if (settings.rebalance.minBenefit !== undefined)
      checkNumber('settings.rebalance.minBenefit', settings.rebalance.minBenefit, 0, 1);
  }
  if (settings.ha) checkHa(settings.ha, scope);
  if (settings.replication) checkReplication(settings.replication);
  const power = settings.powerManagement;
  if (power) {
    if (typeof power.enabled !== 'boolean')
      throw invalid('settings.powerManagement.enabled', 'must be true or false');
    if (power.minHostsOn !== undefined)
      checkNumber('settings.powerManagement.minHostsOn', power.minHostsOn, 0, 10_000);
    if (power.action !== undefined && !['shutdown', 'off'].includes(power.action))
      throw invalid('settings.powerManagement.action', "must be 'shutdown' or 'off'");
    if (power.highLoad !== undefined)
      checkNumber('settings.powerManagement.highLoad', power.highLoad, 0.1, 1);
    if (power.everyMinutes !== undefined) {
      if (scope !== 'global')
        throw invalid(
          'settings.powerManagement.everyMinutes',
          'the power management schedule is set on a global policy',
        );
      checkNumber('settings.powerManagement.everyMinutes', power.everyMinutes, 1, 10_080);
    }
  }
  if (settings.cpuOvercommit !== undefined)
    checkNumber('settings.cpuOvercommit', settings.cpuOvercommit, 0.1, 64);
  if (settings.memoryOvercommit !== undefined)
    checkNumber('settings.memoryOvercommit', settings.memoryOvercommit, 0.1, 4);
  if (settings.strategyWeight !== undefined)
    checkNumber('settings.strategyWeight', settings.strategyWeight, 0, 1000);
  if (settings.costWeight !== undefined)
    checkNumber('settings.costWeight', settings.costWeight, 0, 1000);
  if (settings.strategy !== undefined && !['spread', 'pack'].includes(settings.strategy))
    throw invalid('settings.strategy', "must be 'spread' or 'pack'");
  const migration = settings.migration;
  if (migration) {
    const field = (key: string) => `settings.migration.${key}`;
    if (migration.maxPerHost !== undefined)
      checkNumber(field('maxPerHost'), migration.maxPerHost, 1, 64);
    if (migration.maxTotal !== undefined)
      checkNumber(field('maxTotal'), migration.maxTotal, 1, 10_000);
    for (const key of [
      'hostBandwidthBytesPerSecond',
      'interClusterBandwidthBytesPerSecond',
      'interDatacenterBandwidthBytesPerSecond',
    ] as const)
      if (migration[key] !== undefined) checkNumber(field(key), migration[key], 1e6, 1e12);
    if (migration.maxDowntimeMs !== undefined)
      checkNumber(field('maxDowntimeMs'), migration.maxDowntimeMs, 1, 60_000);
    if (migration.defaultDirtyBytesPerSecond !== undefined)
      checkNumber(
        field('defaultDirtyBytesPerSecond'),
        migration.defaultDirtyBytesPerSecond,
        0,
        1e11,
      );
  }
  return settings;
}

/** Checks and compiles a policy; `scope` is the resolved scope (ids checked by the caller). */
export function compilePolicy(id: string, input: PolicyInput, scope: PolicyScope): CompiledPolicy {
  if (!policyName.test(input.name))
    throw invalid(
      'name',
      `'${input.name}' is not a valid policy name (letters, digits, . _ -, at most 64)`,
    );
  const constraints = input.constraints ?? [];
  const preferences = input.preferences ?? [];
  const rules = input.rules ?? [];
  checkNames('constraints', constraints, limits.constraints);
  checkNames('preferences', preferences, limits.preferences);
  checkNames('rules', rules, limits.rules);
  const when =
    input.when === undefined || input.when.trim() === ''
      ? null
      : compileField('when', input.when, compileCondition, vmRoots, "the 'when' condition");
  return {
    id,
    name: input.name,
    scope,
    enabled: input.enabled ?? true,
    when,
    constraints: constraints.map((c, index) => ({
      name: c.name,
      source: c.expression,
      expression: compileField(
        `constraints[${index}].expression`,
        c.expression,
        compileCondition,
        undefined,
        `constraint '${c.name}'`,
      ),
    })),
    preferences: preferences.map((p, index) => ({
      name: p.name,
      source: p.expression,
      weight: checkNumber(`preferences[${index}].weight`, p.weight, -1000, 1000),
      expression: compileField(
        `preferences[${index}].expression`,
        p.expression,
        compileScore,
        undefined,
        `preference '${p.name}'`,
      ),
    })),
    rules: rules.map((rule, index) => compileRule(rule, `rules[${index}]`)),
    settings: checkSettings(input.settings ?? {}, scope.kind),
  };
}

function compileRule(rule: RuleInput, field: string): CompiledRule {
  if (!(ruleKinds as readonly string[]).includes(rule.kind))
    throw invalid(`${field}.kind`, `must be one of ${ruleKinds.join(', ')}`);
  const aboutHosts = rule.kind === 'onHosts' || rule.kind === 'offHosts';
  if (aboutHosts && !rule.hosts)
    throw invalid(`${field}.hosts`, `a ${rule.kind} rule needs 'hosts' (which hosts)`);
  if (!aboutHosts && rule.hosts !== undefined)
    throw invalid(
      `${field}.hosts`,
      `a ${rule.kind} rule is about VMs together; it takes no 'hosts'`,
    );
  if (aboutHosts && rule.groupBy !== undefined)
    throw invalid(`${field}.groupBy`, `a ${rule.kind} rule takes no 'groupBy'`);
  return {
    name: rule.name,
    kind: rule.kind,
    hard: rule.hard,
    weight: rule.weight === undefined ? 1 : checkNumber(`${field}.weight`, rule.weight, 0, 1000),
    vms: rule.vms
      ? compileField(`${field}.vms`, rule.vms, compileCondition, vmRoots, "a rule's 'vms' selector")
      : null,
    groupBy: rule.groupBy
      ? compileField(
          `${field}.groupBy`,
          rule.groupBy,
          compileExpression,
          vmRoots,
          "a rule's 'groupBy'",
        )
      : null,
    hosts: rule.hosts
      ? compileField(
          `${field}.hosts`,
          rule.hosts,
          compileCondition,
          hostRoots,
          "a rule's 'hosts' selector",
        )
      : null,
  };
}

/** Settings in force: later (more specific) policies override earlier ones, key by key. */
/**
 * The settings for a VM on a host: the host's own (overcommit, migration) from the host's policies
 * whatever their `when` — a host's capacity is shared by every VM on it — and the rest from the
 * policies in force for the VM.
 */
export function settingsOnHost(
  vmPolicies: readonly CompiledPolicy[],
  hostPolicies: readonly CompiledPolicy[],
): PolicySettings {
  const forVm = mergeSettings(vmPolicies);
  const forHost = mergeSettings(hostPolicies);
  for (const key of hostSideSettings) delete forVm[key];
  for (const key of hostSideSettings)
    if (forHost[key] !== undefined) Object.assign(forVm, { [key]: forHost[key] });
  return forVm;
}

export function mergeSettings(policies: readonly CompiledPolicy[]): PolicySettings {
  const merged: PolicySettings = {};
  for (const policy of [...policies].sort(
    (a, b) => scopeOrder[a.scope.kind] - scopeOrder[b.scope.kind],
  )) {
    const { migration, ha, replication, ...rest } = policy.settings;
    Object.assign(merged, rest);
    if (migration) merged.migration = { ...merged.migration, ...migration };
    if (replication) merged.replication = { ...merged.replication, ...replication };
    if (ha) {
      // vmMonitoring too, field by field: a VM's { enabled, maxRestarts } keeps its cluster's window.
      const vmMonitoring = ha.vmMonitoring && {
        ...merged.ha?.vmMonitoring,
        ...ha.vmMonitoring,
      };
      merged.ha = { ...merged.ha, ...ha, ...(vmMonitoring ? { vmMonitoring } : {}) };
    }
  }
  return merged;
}
