/**
 * VM actions of the vsphere driver, each a vSphere task awaited with its
 * progress (or, for guest shutdown, a power state awaited): power, guest
 * shutdown and reboot (VMware Tools required), suspend, reset, relocate to a
 * host and/or datastore (RelocateVM_Task: the simulator lacks
 * MigrateVM_Task), rename, reconfigure, destroy. Create, clone and snapshots
 * are in vsphere-provisioning.ts.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { PropertyCollector } from '../../protocols/vim/property-collector.js';
import { asTask, waitForTask } from '../../protocols/vim/tasks.js';
import type { VimClient } from '../../protocols/vim/vim-client.js';
import { MoRef, ref, str, type VimArg, type VimValue } from '../../protocols/vim/vim-values.js';
import type { ActionContext, DiscoveredVm } from '../driver.js';
import type { InventoryCache } from './inventory-model.js';

export interface ActionHost {
  client: VimClient;
  cache: InventoryCache;
  clock: Clock;
  /** The VM read again, once the change feed agrees with it. */
  readVm(id: string, expect?: readonly string[]): Promise<DiscoveredVm>;
  /** Resolves once the change feed has seen the VM leave. */
  vmGone(id: string): Promise<void>;
}

export const vmRef = (id: string) => new MoRef('VirtualMachine', id);

/** Runs a *_Task method and waits for it, reporting its progress to the Zenith task. */
export async function runTask(
  host: ActionHost,
  method: string,
  self: MoRef,
  args: Record<string, VimArg>,
  context: ActionContext,
): Promise<VimValue | undefined> {
  const task = asTask(
    await host.client.invoke(method, self, args, { signal: context.signal }),
    method,
  );
  return waitForTask(host.client, task, {
    signal: context.signal,
    clock: host.clock,
    onProgress: (percent) => context.progress({ percent, message: method }),
  });
}

/** A task on the VM, then the VM read again. */
export async function vmTask(
  host: ActionHost,
  id: string,
  method: string,
  args: Record<string, VimArg>,
  context: ActionContext,
): Promise<DiscoveredVm> {
  await runTask(host, method, vmRef(id), args, context);
  return host.readVm(id, changedPaths[method] ?? []);
}

/** The paths each task changes, which the change feed must report before the task's result is handed back. */
const changedPaths: Record<string, readonly string[]> = {
  PowerOnVM_Task: ['runtime.powerState'],
  PowerOffVM_Task: ['runtime.powerState'],
  SuspendVM_Task: ['runtime.powerState'],
  RelocateVM_Task: ['runtime.host', 'datastore'],
  Rename_Task: ['name'],
};

/** Guest shutdown: needs VMware Tools; waits until the VM is off. */
export async function shutdownGuest(
  host: ActionHost,
  id: string,
  context: ActionContext,
  timeoutMs: number,
): Promise<DiscoveredVm> {
  await requireTools(host, id, 'shut down');
  await host.client.invoke('ShutdownGuest', vmRef(id), {}, { signal: context.signal });
  context.progress({ percent: 50, message: 'the guest is shutting down' });
  const deadline = host.clock.now() + timeoutMs;
  for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
    const vm = await host.readVm(id, ['runtime.powerState']);
    if (vm.powerState === 'stopped') return vm;
    if (host.clock.now() > deadline)
      throw new ZenithError('VIM_TIMEOUT', `${vm.name} did not shut down within ${timeoutMs} ms`, {
        timeoutMs,
      });
    await host.clock.sleep(pause, context.signal);
  }
}

export async function rebootGuest(
  host: ActionHost,
  id: string,
  context: ActionContext,
): Promise<DiscoveredVm> {
  await requireTools(host, id, 'reboot');
  await host.client.invoke('RebootGuest', vmRef(id), {}, { signal: context.signal });
  return host.readVm(id);
}

async function requireTools(host: ActionHost, id: string, what: string): Promise<void> {
  const vm = await host.readVm(id);
  if (vm.facts['tools.status'] !== 'running')
    throw new ZenithError(
      'VIM_TOOLS_UNAVAILABLE',
      `${vm.name} has no VMware Tools running, so its guest cannot be asked to ${what}; use stop or reset instead`,
      { toolsStatus: vm.facts['tools.status'] ?? null, vm: vm.name },
    );
}

/** Moves a VM to another host and/or datastore; the pool follows the host's cluster. */
export async function relocate(
  host: ActionHost,
  id: string,
  target: { hostId?: string; datastoreId?: string },
  context: ActionContext,
): Promise<DiscoveredVm> {
  const spec: Record<string, VimArg> = {};
  if (target.datastoreId) spec.datastore = new MoRef('Datastore', target.datastoreId);
  if (target.hostId) {
    const hostRef = new MoRef('HostSystem', target.hostId);
    const current = host.cache.get(id);
    const targetPool = await rootPoolOf(host, hostRef);
    const currentPool = ref(current?.props.get('resourcePool'));
    // Keep the VM's pool when the host is in the same cluster; else its cluster's root pool.
    const sameOwner =
      currentPool &&
      (await ownerOf(host, currentPool))?.value === (await computeResourceOf(host, hostRef))?.value;
    if (!sameOwner && targetPool) spec.pool = targetPool;
    spec.host = hostRef;
  }
  // The schema's order: datastore, pool, host.
  const ordered: Record<string, VimArg> = {};
  for (const key of ['datastore', 'pool', 'host'])
    if (spec[key] !== undefined) ordered[key] = spec[key];
  return vmTask(host, id, 'RelocateVM_Task', { spec: ordered }, context);
}

export async function computeResourceOf(
  host: ActionHost,
  hostRef: MoRef,
): Promise<MoRef | undefined> {
  const cached = ref(host.cache.get(hostRef.value)?.props.get('parent'));
  if (cached) return cached;
  return ref(
    (await new PropertyCollector(host.client).retrieveOne(hostRef, ['parent']))?.get('parent'),
  );
}

export async function rootPoolOf(host: ActionHost, hostRef: MoRef): Promise<MoRef | undefined> {
  const compute = await computeResourceOf(host, hostRef);
  if (!compute) return undefined;
  return ref(
    (await new PropertyCollector(host.client).retrieveOne(compute, ['resourcePool']))?.get(
      'resourcePool',
    ),
  );
}

async function ownerOf(host: ActionHost, pool: MoRef): Promise<MoRef | undefined> {
  const cached = ref(host.cache.get(pool.value)?.props.get('owner'));
  if (cached) return cached;
  return ref((await new PropertyCollector(host.client).retrieveOne(pool, ['owner']))?.get('owner'));
}

export function rename(
  host: ActionHost,
  id: string,
  name: string,
  context: ActionContext,
): Promise<DiscoveredVm> {
  return vmTask(host, id, 'Rename_Task', { newName: name }, context);
}

export function reconfigure(
  host: ActionHost,
  id: string,
  change: { cpus?: number; memoryBytes?: number },
  context: ActionContext,
): Promise<DiscoveredVm> {
  const spec: Record<string, VimArg> = {};
  if (change.cpus !== undefined) spec.numCPUs = change.cpus;
  if (change.memoryBytes !== undefined) {
    if (change.memoryBytes % (1024 * 1024) !== 0)
      throw new ZenithError('ZEN_BAD_REQUEST', 'vSphere memory is set in whole MiB', {
        memoryBytes: change.memoryBytes,
      });
    spec.memoryMB = change.memoryBytes / (1024 * 1024);
  }
  return vmTask(host, id, 'ReconfigVM_Task', { spec }, context);
}

export function nameOf(host: ActionHost, id: string): string {
  return str(host.cache.get(id)?.props.get('name')) ?? id;
}
