/**
 * vSphere HA as facts: a cluster's HA configuration (`configurationEx.dasConfig`), a host's state
 * as vSphere HA's agent reports it (`runtime.dasHostState`), and a VM's own restart settings (the
 * cluster's `configurationEx.dasVmConfig`). Zenith runs no HA of its own on vSphere: it shows
 * vSphere's (docs/high-availability.md, "vSphere clusters").
 */
import type { Facts } from '../driver.js';
import {
  bool,
  list,
  num,
  obj,
  ref,
  refs,
  str,
  type VimValue,
} from '../../protocols/vim/vim-values.js';

/** Admission control policies by their vSphere type. */
const admissionPolicies: Record<string, string> = {
  ClusterFailoverLevelAdmissionControlPolicy: 'hostFailures',
  ClusterFailoverResourcesAdmissionControlPolicy: 'resourcePercentage',
  ClusterFailoverHostAdmissionControlPolicy: 'failoverHosts',
};

/**
 * A cluster's vSphere HA facts from its `configurationEx` (absent: not read, no facts). A
 * configuration without `dasConfig.enabled` is HA off, as vCenter shows it.
 */
export function clusterHaFacts(
  configurationEx: VimValue | undefined,
  nameOf: (moref: string) => string,
): Facts {
  const config = obj(configurationEx);
  if (!config) return {};
  const das = obj(config.dasConfig);
  const facts: Record<string, Facts[string] | undefined> = {
    'ha.vsphere.enabled': bool(das?.enabled) ?? false,
  };
  if (!das) return compact(facts);
  facts['ha.vsphere.hostMonitoring'] = str(das.hostMonitoring);
  facts['ha.vsphere.vmMonitoring'] = str(das.vmMonitoring);
  facts['ha.vsphere.admissionControl'] = bool(das.admissionControlEnabled);
  const policy = obj(das.admissionControlPolicy);
  const policyType = str(policy?.$type);
  if (policy && policyType) {
    facts['ha.vsphere.admissionControlPolicy'] = admissionPolicies[policyType] ?? policyType;
    facts['ha.vsphere.hostFailuresToTolerate'] = num(policy.failoverLevel);
    facts['ha.vsphere.cpuFailoverPercent'] = num(policy.cpuFailoverResourcesPercent);
    facts['ha.vsphere.memoryFailoverPercent'] = num(policy.memoryFailoverResourcesPercent);
    const hosts = refs(policy.failoverHosts);
    if (hosts.length > 0) facts['ha.vsphere.failoverHosts'] = hosts.map((h) => nameOf(h.value));
  }
  // Before 6.5 the tolerated failures were dasConfig's own field.
  facts['ha.vsphere.hostFailuresToTolerate'] ??= num(das.failoverLevel);
  const defaults = obj(das.defaultVmSettings);
  facts['ha.vsphere.restartPriority'] = str(defaults?.restartPriority);
  facts['ha.vsphere.isolationResponse'] = str(defaults?.isolationResponse);
  return compact(facts);
}

/** A host's state as vSphere HA reports it (`master`, `connectedToMaster`, `hostDown`, …). */
export function hostHaFacts(dasHostState: VimValue | undefined): Facts {
  const state = str(obj(dasHostState)?.state);
  return state ? { 'ha.vsphere.hostState': state } : {};
}

export interface VmHaOverride {
  restartPriority?: string;
  isolationResponse?: string;
}

const overridesByConfig = new WeakMap<object, Map<string, VmHaOverride>>();

/** The VMs' own HA settings in a cluster's configuration, by VM moref (read once per value). */
export function vmHaOverrides(configurationEx: VimValue | undefined): Map<string, VmHaOverride> {
  const config = obj(configurationEx);
  if (!config) return new Map();
  let overrides = overridesByConfig.get(config);
  if (overrides) return overrides;
  overrides = new Map();
  for (const item of list(config.dasVmConfig)) {
    const entry = obj(item);
    const vm = ref(entry?.key);
    if (!entry || !vm) continue;
    const settings = obj(entry.dasSettings);
    // `restartPriority` was the field before dasSettings (vSphere 4).
    const restartPriority = str(settings?.restartPriority) ?? str(entry.restartPriority);
    const isolationResponse = str(settings?.isolationResponse);
    overrides.set(vm.value, {
      ...(restartPriority ? { restartPriority } : {}),
      ...(isolationResponse ? { isolationResponse } : {}),
    });
  }
  overridesByConfig.set(config, overrides);
  return overrides;
}

/** A VM's own HA facts (its override in its cluster's configuration, if any). */
export function vmHaFacts(override: VmHaOverride | undefined): Facts {
  if (!override) return {};
  return compact({
    'ha.vsphere.restartPriority': override.restartPriority,
    'ha.vsphere.isolationResponse': override.isolationResponse,
  });
}

/** The VMs whose override differs between two values of a cluster's configuration. */
export function changedOverrides(
  before: VimValue | undefined,
  after: VimValue | undefined,
): string[] {
  const a = vmHaOverrides(before);
  const b = vmHaOverrides(after);
  const changed: string[] = [];
  for (const vm of new Set([...a.keys(), ...b.keys()]))
    if (JSON.stringify(a.get(vm)) !== JSON.stringify(b.get(vm))) changed.push(vm);
  return changed;
}

function compact(facts: Record<string, Facts[string] | undefined>): Facts {
  const out: Facts = {};
  for (const [key, value] of Object.entries(facts)) if (value !== undefined) out[key] = value;
  return out;
}
