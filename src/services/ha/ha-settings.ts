/**
 * The high availability settings in force for a VM or a host: the policies' `ha` settings merged
 * field by field from the most general scope to the VM (global, datacenter, cluster — the host's —
 * then the VM's resource group and the VM itself), with Zenith's defaults for what none sets.
 */
import type { PlacementModel } from '../placement/placement-model.js';
import type { PolicyIndex } from '../policy/policy-service.js';
import type { HostSlot } from '../placement/slots.js';
import {
  mergeSettings,
  type HaPriority,
  type HaSettings,
  type IsolationResponse,
} from '../policy/policy-document.js';
import { isVsphereHost, vsphereHaOfHost } from './vsphere-ha.js';

export interface EffectiveHa {
  enabled: boolean;
  /** Restarted when its host fails: HA enabled and a priority other than disabled. */
  protected: boolean;
  /** Why it is not protected. */
  reason: string | null;
  priority: HaPriority;
  restartOrder: number;
  orderTimeoutMs: number;
  isolationResponse: IsolationResponse;
  detectionMs: number;
  selfFenceMs: number;
  hostFailuresToTolerate: number;
  vmMonitoring: { enabled: boolean; maxRestarts: number; windowMs: number };
}

export const haDefaults = {
  restartPriority: 'medium',
  restartOrder: 1,
  restartOrderTimeoutSeconds: 120,
  isolationResponse: 'leave-running',
  failureDetectionSeconds: 3,
  selfFenceSeconds: 10,
} as const;

export function effectiveHa(ha: HaSettings | undefined): EffectiveHa {
  const enabled = ha?.enabled === true;
  const priority = ha?.restartPriority ?? haDefaults.restartPriority;
  return {
    enabled,
    protected: enabled && priority !== 'disabled',
    reason: !enabled
      ? 'high availability is not enabled where it runs'
      : priority === 'disabled'
        ? 'its restart priority is disabled'
        : null,
    priority,
    restartOrder: ha?.restartOrder ?? haDefaults.restartOrder,
    orderTimeoutMs:
      (ha?.restartOrderTimeoutSeconds ?? haDefaults.restartOrderTimeoutSeconds) * 1000,
    isolationResponse: ha?.isolationResponse ?? haDefaults.isolationResponse,
    detectionMs: (ha?.failureDetectionSeconds ?? haDefaults.failureDetectionSeconds) * 1000,
    selfFenceMs: (ha?.selfFenceSeconds ?? haDefaults.selfFenceSeconds) * 1000,
    hostFailuresToTolerate: ha?.hostFailuresToTolerate ?? 0,
    vmMonitoring: {
      enabled: ha?.vmMonitoring?.enabled === true,
      maxRestarts: ha?.vmMonitoring?.maxRestarts ?? 3,
      windowMs: (ha?.vmMonitoring?.windowMinutes ?? 60) * 60_000,
    },
  };
}

/**
 * On a vSphere host, Zenith's HA is off whatever the policies say: vSphere HA watches it and
 * restarts its VMs (vsphere-ha.ts), so Zenith neither watches it nor restarts, admits or plans for
 * its VMs.
 */
function leftToVsphere(ha: EffectiveHa, host: HostSlot | undefined): EffectiveHa {
  if (!host || !isVsphereHost(host.object)) return ha;
  const { reason } = vsphereHaOfHost(host.object, host.cluster);
  return { ...ha, enabled: false, protected: false, reason, hostFailuresToTolerate: 0 };
}

/** A host's settings: the global policies', then its datacenter's and cluster's. */
export function haOfHost(model: PlacementModel, host: HostSlot): EffectiveHa {
  return leftToVsphere(
    effectiveHa(mergeSettings([...model.policies.global, ...host.policies]).ha),
    host,
  );
}

/**
 * A VM's settings, where it runs (its host's cluster) and with its group's and its own; with no
 * VM (null), the host's.
 */
export function haOfVm(model: PlacementModel, vmId: string | null, host?: HostSlot): EffectiveHa {
  const vm = vmId === null ? undefined : model.vms.get(vmId);
  const home = host ?? (vm && vm.home >= 0 ? model.hosts[vm.home] : undefined);
  const policies = [
    ...(vm ? model.vmPolicies(vm) : model.policies.global),
    ...(home?.policies ?? []),
  ];
  return leftToVsphere(effectiveHa(mergeSettings(policies).ha), home);
}

/**
 * Whether any policy's `ha` settings pass a test (HA or VM monitoring on somewhere): what the
 * loops ask each tick before doing anything, worked out again only when the policies change.
 */
export class HaPolicyFlag {
  #version = -1;
  #value = false;

  constructor(private readonly test: (ha: HaSettings) => boolean) {}

  of(index: PolicyIndex): boolean {
    if (index.version !== this.#version) {
      const passes = (policy: { settings: { ha?: HaSettings } }) =>
        policy.settings.ha !== undefined && this.test(policy.settings.ha);
      this.#value =
        index.global.some(passes) ||
        [...index.byScopeId.values()].some((policies) => policies.some(passes));
      this.#version = index.version;
    }
    return this.#value;
  }
}
