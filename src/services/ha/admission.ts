/**
 * Admission control: with "tolerate N host failures" in force where a VM would run, a creation, a
 * start or a migration is refused when, with the VM where it would be, some failure of N hosts
 * would leave a protected VM that no host can restart (the what-if, what-if.ts).
 *
 * N is a host-side setting (global, datacenter or cluster policies): the hosts that may fail are
 * the connected hosts of the scope the setting comes from (the cluster whose policy sets it, the
 * datacenter, or every host). Every combination of N of them is tried when there are at most
 * 2,000; otherwise one: the N hosts whose protected running VMs hold the most memory (then vCPUs),
 * the failure hardest to recover from in most fleets, though not always (an approximation).
 * Combinations are tried biggest hosts first, so a refusal is usually found at the first.
 *
 * Pure: over a placement model, which is left as it was apart from the VM the caller placed.
 */
import { ZenithError } from '../../core/errors.js';
import type { PlacementModel } from '../placement/placement-model.js';
import type { HostSlot, VmSlot } from '../placement/slots.js';
import type { CompiledPolicy, ScopeKind } from '../policy/policy-document.js';
import { scopeOrder } from '../policy/policy-document.js';
import type { PolicyIndex } from '../policy/policy-service.js';
import { isVsphereHost } from './vsphere-ha.js';
import { WhatIfSimulator, type WhatIf, type WhatIfOptions } from './what-if.js';

/** At most this many combinations of failed hosts are tried one by one. */
export const maxCombinations = 2000;

/** The "tolerate N host failures" in force on a host, and where it comes from. */
export interface Tolerance {
  failures: number;
  policy: string;
  scope: { kind: ScopeKind; id: string | null; name: string | null };
}

export type AdmissionAction = 'create' | 'start' | 'resume' | 'migrate';

const anyByIndex = new WeakMap<PolicyIndex, boolean>();

/** Whether any policy sets hostFailuresToTolerate above 0 (remembered per policy index). */
export function anyToleratesFailures(policies: PolicyIndex): boolean {
  let known = anyByIndex.get(policies);
  if (known === undefined) {
    const sets = (policy: CompiledPolicy) => (policy.settings.ha?.hostFailuresToTolerate ?? 0) > 0;
    known = policies.global.some(sets);
    if (!known)
      for (const list of policies.byScopeId.values())
        if (list.some(sets)) {
          known = true;
          break;
        }
    anyByIndex.set(policies, known);
  }
  return known;
}

/**
 * The tolerance in force on a host: the most specific policy that sets it; null when 0, and on a
 * vSphere host (vSphere HA's own admission control governs it, not Zenith's).
 */
export function toleranceOf(model: PlacementModel, host: HostSlot): Tolerance | null {
  if (isVsphereHost(host.object)) return null;
  const policies = [...model.policies.global, ...host.policies].sort(
    (a, b) => scopeOrder[a.scope.kind] - scopeOrder[b.scope.kind],
  );
  let source: CompiledPolicy | undefined;
  for (const policy of policies)
    if (policy.settings.ha?.hostFailuresToTolerate !== undefined) source = policy;
  const failures = source?.settings.ha?.hostFailuresToTolerate ?? 0;
  if (!source || failures <= 0) return null;
  const scopeObject =
    source.scope.kind === 'cluster'
      ? host.cluster
      : source.scope.kind === 'datacenter'
        ? host.datacenter
        : undefined;
  return {
    failures,
    policy: source.name,
    scope: { kind: source.scope.kind, id: source.scope.id, name: scopeObject?.name ?? null },
  };
}

/**
 * The hosts that may fail under a tolerance: the connected hosts of its scope, but vSphere's
 * (vSphere HA restarts their VMs; Zenith restarts none of them).
 */
export function hostsInScope(model: PlacementModel, tolerance: Tolerance): HostSlot[] {
  const { kind, id } = tolerance.scope;
  return model.hosts.filter(
    (host) =>
      host.state === 'connected' &&
      !isVsphereHost(host.object) &&
      (kind === 'cluster'
        ? host.cluster?.id === id
        : kind === 'datacenter'
          ? host.datacenter?.id === id
          : true),
  );
}

/** n choose k, or Infinity once past `cap`. */
export function combinations(n: number, k: number, cap = maxCombinations): number {
  if (k < 0 || k > n) return 0;
  let count = 1;
  for (let i = 1; i <= Math.min(k, n - k); i++) {
    count = (count * (n - k + i)) / i;
    if (count > cap) return Infinity;
  }
  return Math.round(count);
}

/**
 * The sets of hosts to fail: every combination of `failures` of them (biggest first) when there
 * are at most maxCombinations, else the `failures` biggest; all of them when there are fewer.
 */
export function failureSets(
  hosts: readonly HostSlot[],
  failures: number,
  weight: (host: HostSlot) => [number, number],
): { sets: Iterable<HostSlot[]>; exhaustive: boolean; count: number } {
  const ranked = [...hosts].sort((a, b) => {
    const [am, ac] = weight(a);
    const [bm, bc] = weight(b);
    return bm - am || bc - ac || a.index - b.index;
  });
  const k = Math.min(failures, ranked.length);
  const count = combinations(ranked.length, k);
  if (count === Infinity) return { sets: [ranked.slice(0, k)], exhaustive: false, count: 1 };
  return { sets: combinationsOf(ranked, k), exhaustive: true, count };
}

/** Every k-combination of the items, in lexicographic order of their positions. */
function* combinationsOf<T>(items: readonly T[], k: number): Generator<T[]> {
  const positions = Array.from({ length: k }, (_, i) => i);
  const n = items.length;
  while (true) {
    yield positions.map((p) => items[p]!);
    let i = k - 1;
    while (i >= 0 && positions[i] === n - k + i) i--;
    if (i < 0) return;
    positions[i]!++;
    for (let j = i + 1; j < k; j++) positions[j] = positions[j - 1]! + 1;
  }
}

export interface Recoverability {
  tolerance: Tolerance;
  /** How many sets of failed hosts were tried, and whether they were all the combinations. */
  tried: number;
  exhaustive: boolean;
  /** The first failure found that some protected VM would not survive, or null. */
  failure: WhatIf | null;
}

/** Whether every failure of N hosts of the tolerance's scope can be recovered from, on the model. */
export function recoverability(
  model: PlacementModel,
  tolerance: Tolerance,
  options: WhatIfOptions = {},
): Recoverability {
  const simulator = new WhatIfSimulator(model, options);
  const weight = (host: HostSlot): [number, number] => {
    let memory = 0;
    let cpu = 0;
    for (const { vm } of simulator.protectedOn(host)) {
      memory += vm.memoryBytes;
      cpu += vm.cpu;
    }
    return [memory, cpu];
  };
  const hosts = hostsInScope(model, tolerance);
  const { sets, exhaustive } = failureSets(hosts, tolerance.failures, weight);
  let tried = 0;
  for (const failed of sets) {
    tried++;
    // A failure that restarts nothing is recovered from by definition.
    if (failed.every((host) => simulator.protectedOn(host).length === 0)) continue;
    const outcome = simulator.run(failed);
    if (outcome.unrecoverable > 0) return { tolerance, tried, exhaustive, failure: outcome };
  }
  return { tolerance, tried, exhaustive, failure: null };
}

/** The refusal: which VMs would not restart, and after which failure. */
export function admissionError(
  action: AdmissionAction,
  vmName: string,
  hostName: string,
  verdict: Recoverability & { failure: WhatIf },
): ZenithError {
  const { tolerance, failure } = verdict;
  const lost = failure.restarts.filter((restart) => restart.toHostId === null);
  const names = lost.slice(0, 5).map((restart) => restart.vmName);
  const more = lost.length > names.length ? ` and ${lost.length - names.length} more` : '';
  const failedNames = failure.failedHosts.map((host) => host.name).join(' and ');
  const where =
    tolerance.scope.kind === 'global'
      ? 'everywhere'
      : `on ${tolerance.scope.kind} ${tolerance.scope.name ?? tolerance.scope.id}`;
  const verb = { create: 'creating', start: 'starting', resume: 'resuming', migrate: 'moving' }[
    action
  ];
  return new ZenithError(
    'ZEN_HA_ADMISSION',
    `${verb} ${vmName} on ${hostName} would break high availability's admission control ` +
      `(tolerate ${tolerance.failures} host failure${tolerance.failures === 1 ? '' : 's'}, ` +
      `policy '${tolerance.policy}' ${where}): if ${failedNames} failed, no host could restart ` +
      `${names.join(', ')}${more}`,
    {
      action,
      vm: vmName,
      host: hostName,
      hostFailuresToTolerate: tolerance.failures,
      policy: tolerance.policy,
      scope: tolerance.scope,
      failedHosts: failure.failedHosts,
      unrecoverable: lost.map((restart) => ({
        vmId: restart.vmId,
        vmName: restart.vmName,
        fromHostId: restart.fromHostId,
        fromHostName: restart.fromHostName,
        priority: restart.priority,
        rejectedByReason: restart.rejectedByReason,
      })),
      failuresTried: verdict.tried,
      exhaustive: verdict.exhaustive,
    },
  );
}

/**
 * Admission of a VM already placed on `host` in the model (created there, started there, or moved
 * there): null when every failure within tolerance is recovered from, or the refusal.
 */
export function admit(
  model: PlacementModel,
  action: AdmissionAction,
  vm: VmSlot,
  host: HostSlot,
  options: WhatIfOptions = {},
): ZenithError | null {
  const tolerance = toleranceOf(model, host);
  if (!tolerance) return null;
  const verdict = recoverability(model, tolerance, options);
  if (!verdict.failure) return null;
  return admissionError(action, vm.name, host.name, { ...verdict, failure: verdict.failure });
}
