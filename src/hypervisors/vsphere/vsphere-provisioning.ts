/**
 * New VMs on vSphere, always with their folder, pool and datastore set
 * (vCenter needs them; the simulator's CloneVM_Task crashes without a
 * folder): create from scratch (CreateVM_Task) or from a template or VM
 * (CloneVM_Task), clone, and snapshots (create, revert, remove).
 */
import { ZenithError } from '../../core/errors.js';
import { PropertyCollector } from '../../protocols/vim/property-collector.js';
import {
  list,
  MoRef,
  obj,
  ref,
  refs,
  str,
  type VimArg,
  type VimValue,
} from '../../protocols/vim/vim-values.js';
import type {
  ActionContext,
  CloneOptions,
  DiscoveredVm,
  PowerState,
  SnapshotInfo,
  VmSpec,
} from '../driver.js';
import { powerStateOf } from './inventory-model.js';
import {
  reconfigure,
  relocate,
  rootPoolOf,
  runTask,
  vmRef,
  type ActionHost,
} from './vsphere-actions.js';

const MiB = 1024 * 1024;

/** Where a new VM goes: the datacenter's VM folder, the host's root pool, a datastore the host sees. */
async function placement(host: ActionHost, hostId: string, datastore: string | undefined) {
  const hostRef = new MoRef('HostSystem', hostId);
  const collector = new PropertyCollector(host.client);
  const hostProps = await collector.retrieveOne(hostRef, ['datastore', 'name']);
  if (!hostProps)
    throw new ZenithError('ZEN_NOT_FOUND', `no host ${hostId} on this vCenter`, { hostId });
  const seen = refs(hostProps.get('datastore'));
  const wanted = datastore
    ? seen.find(
        (d) =>
          d.value === datastore || str(host.cache.get(d.value)?.props.get('name')) === datastore,
      )
    : seen[0];
  if (!wanted)
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      datastore
        ? `host ${str(hostProps.get('name'))} has no datastore '${datastore}'`
        : `host ${str(hostProps.get('name'))} has no datastore`,
      { datastore: datastore ?? null },
    );
  const dc = host.cache.datacenterOf(hostId);
  if (!dc) throw new ZenithError('ZEN_NOT_FOUND', `the datacenter of host ${hostId} is unknown`);
  const folder = ref(
    (await collector.retrieveOne(new MoRef('Datacenter', dc), ['vmFolder']))?.get('vmFolder'),
  );
  const pool = await rootPoolOf(host, hostRef);
  if (!folder || !pool)
    throw new ZenithError(
      'VIM_PROTOCOL_ERROR',
      `cannot find the VM folder or pool of host ${hostId}`,
    );
  return { hostRef, datastore: wanted, folder, pool };
}

/** options: template (a template or VM, by name or id), datastore (name or id), guestId. */
export async function createVm(
  host: ActionHost,
  spec: VmSpec,
  context: ActionContext,
): Promise<DiscoveredVm> {
  const options = spec.options ?? {};
  const known = ['template', 'datastore', 'guestId'];
  const unknown = Object.keys(options).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      `unknown vsphere option(s): ${unknown.join(', ')} (known: ${known.join(', ')})`,
      { unknown },
    );
  if (spec.memoryBytes % MiB !== 0)
    throw new ZenithError('ZEN_BAD_REQUEST', 'vSphere memory is set in whole MiB', {
      memoryBytes: spec.memoryBytes,
    });
  await ensureNameFree(host, spec.name);
  const where = await placement(
    host,
    spec.hostExternalId,
    typeof options.datastore === 'string' ? options.datastore : undefined,
  );
  const dsName =
    str(host.cache.get(where.datastore.value)?.props.get('name')) ?? where.datastore.value;
  let created: VimValue | undefined;
  if (typeof options.template === 'string') {
    const source = findVm(host, options.template);
    created = await runTask(
      host,
      'CloneVM_Task',
      source,
      {
        folder: where.folder,
        name: spec.name,
        spec: {
          location: { datastore: where.datastore, pool: where.pool, host: where.hostRef },
          template: false,
          config: { numCPUs: spec.cpus, memoryMB: spec.memoryBytes / MiB },
          powerOn: false,
        },
      },
      context,
    );
  } else {
    const config: Record<string, VimArg> = {
      name: spec.name,
      guestId: typeof options.guestId === 'string' ? options.guestId : 'otherGuest64',
      files: { vmPathName: `[${dsName}]` },
      numCPUs: spec.cpus,
      memoryMB: spec.memoryBytes / MiB,
    };
    if (spec.diskBytes > 0) config.deviceChange = diskDevices(spec.diskBytes);
    created = await runTask(
      host,
      'CreateVM_Task',
      where.folder,
      { config, pool: where.pool, host: where.hostRef },
      context,
    );
  }
  if (!(created instanceof MoRef))
    throw new ZenithError('VIM_PROTOCOL_ERROR', 'the new VM has no reference');
  let vm = await host.readVm(created.value, ['name']);
  // vCenter honours a clone's config and host; not every server does (the simulator ignores both).
  if (vm.facts['cpu.count'] !== spec.cpus || vm.facts['memory.bytes'] !== spec.memoryBytes)
    vm = await reconfigure(
      host,
      created.value,
      { cpus: spec.cpus, memoryBytes: spec.memoryBytes },
      context,
    );
  if (vm.hostExternalId !== spec.hostExternalId)
    vm = await relocate(host, created.value, { hostId: spec.hostExternalId }, context);
  return vm;
}

/** A SCSI controller and a thin disk of the asked size. */
function diskDevices(bytes: number): VimArg {
  return [
    {
      operation: 'add',
      device: {
        $type: 'VirtualLsiLogicController',
        key: -100,
        busNumber: 0,
        sharedBus: 'noSharing',
      },
    },
    {
      operation: 'add',
      fileOperation: 'create',
      device: {
        $type: 'VirtualDisk',
        key: -101,
        backing: {
          $type: 'VirtualDiskFlatVer2BackingInfo',
          fileName: '',
          diskMode: 'persistent',
          thinProvisioned: true,
        },
        controllerKey: -100,
        unitNumber: 0,
        capacityInKB: Math.ceil(bytes / 1024),
      },
    },
  ];
}

/**
 * A clone of a VM, stopped, next to its source (same folder, pool, host and datastore). A linked
 * clone (`linked`) is made from the source's current snapshot with diskMoveType
 * createNewChildDiskBacking: its disks are children of the snapshot's, so it is made at once and
 * takes little space, but it needs the source's disks (and that snapshot) for as long as it lives.
 * A VM without a snapshot cannot be linked-cloned: ZEN_INVALID_STATE, before anything is made.
 */
export async function cloneVm(
  host: ActionHost,
  id: string,
  options: CloneOptions,
  context: ActionContext,
): Promise<DiscoveredVm> {
  await ensureNameFree(host, options.name);
  const props = await new PropertyCollector(host.client).retrieveOne(vmRef(id), [
    'parent',
    'resourcePool',
    'runtime.host',
    'datastore',
    'snapshot.currentSnapshot',
  ]);
  if (!props) throw new ZenithError('ZEN_NOT_FOUND', `no VM ${id} on this vCenter`);
  const folder = ref(props.get('parent'));
  const hostRef = ref(props.get('runtime.host'));
  const [datastore] = refs(props.get('datastore'));
  const pool =
    ref(props.get('resourcePool')) ?? (hostRef ? await rootPoolOf(host, hostRef) : undefined);
  if (!folder || !pool || !datastore)
    throw new ZenithError(
      'VIM_PROTOCOL_ERROR',
      `cannot tell the folder, pool or datastore of VM ${id}`,
    );
  const snapshot = ref(props.get('snapshot.currentSnapshot'));
  if (options.linked && !snapshot)
    throw new ZenithError(
      'ZEN_INVALID_STATE',
      "a linked clone is made from the VM's current snapshot, and this VM has none",
      { hint: 'take a snapshot of the VM first, then clone it linked' },
    );
  const created = await runTask(
    host,
    'CloneVM_Task',
    vmRef(id),
    {
      folder,
      name: options.name,
      spec: {
        location: {
          datastore,
          ...(options.linked ? { diskMoveType: 'createNewChildDiskBacking' } : {}),
          pool,
          ...(hostRef ? { host: hostRef } : {}),
        },
        template: false,
        powerOn: false,
        ...(options.linked && snapshot ? { snapshot } : {}),
      },
    },
    context,
  );
  if (!(created instanceof MoRef))
    throw new ZenithError('VIM_PROTOCOL_ERROR', 'the clone has no reference');
  return host.readVm(created.value, ['name']);
}

function findVm(host: ActionHost, idOrName: string): MoRef {
  for (const object of host.cache.objects.values())
    if (
      object.ref.type === 'VirtualMachine' &&
      (object.ref.value === idOrName || str(object.props.get('name')) === idOrName)
    )
      return object.ref;
  throw new ZenithError('ZEN_NOT_FOUND', `no VM or template '${idOrName}' on this vCenter`, {
    template: idOrName,
  });
}

async function ensureNameFree(host: ActionHost, name: string): Promise<void> {
  for (const object of host.cache.objects.values())
    if (object.ref.type === 'VirtualMachine' && str(object.props.get('name')) === name)
      throw new ZenithError('ZEN_CONFLICT', `a VM named '${name}' exists on this vCenter`, {
        name,
      });
}

interface SnapshotNode extends SnapshotInfo {
  ref: MoRef;
}

export async function listSnapshots(host: ActionHost, id: string): Promise<SnapshotNode[]> {
  const props = await new PropertyCollector(host.client).retrieveOne(vmRef(id), [
    'snapshot.rootSnapshotList',
  ]);
  if (!props) throw new ZenithError('ZEN_NOT_FOUND', `no VM ${id} on this vCenter`);
  const out: SnapshotNode[] = [];
  const walk = (nodes: VimValue | undefined) => {
    for (const item of list(nodes)) {
      const node = obj(item);
      const snapshot = ref(node?.snapshot);
      if (!node || !snapshot) continue;
      const state: PowerState = powerStateOf(node.state);
      out.push({
        ref: snapshot,
        id: snapshot.value,
        name: str(node.name) ?? snapshot.value,
        createdAt: Date.parse(str(node.createTime) ?? '') || 0,
        powerState: state === 'unknown' ? 'stopped' : state,
      });
      walk(node.childSnapshotList);
    }
  };
  walk(props.get('snapshot.rootSnapshotList'));
  return out;
}

export async function createSnapshot(
  host: ActionHost,
  id: string,
  name: string,
  context: ActionContext,
): Promise<{ snapshot: SnapshotInfo; vm: DiscoveredVm }> {
  const before = await host.readVm(id);
  const created = await runTask(
    host,
    'CreateSnapshot_Task',
    vmRef(id),
    {
      name,
      description: 'taken by Zenith',
      memory: before.powerState === 'running',
      quiesce: false,
    },
    context,
  );
  const snapshots = await listSnapshots(host, id);
  const found =
    snapshots.find((s) => created instanceof MoRef && s.id === created.value) ??
    snapshots.find((s) => s.name === name);
  if (!found)
    throw new ZenithError(
      'VIM_PROTOCOL_ERROR',
      `the snapshot '${name}' is not in the VM's snapshot tree`,
    );
  const { ref: _ref, ...snapshot } = found;
  return { snapshot, vm: await host.readVm(id) };
}

/** One snapshot of a VM, by its id; ZEN_NOT_FOUND when the VM has none of that id. */
async function snapshotOf(host: ActionHost, id: string, snapshotId: string): Promise<SnapshotNode> {
  const snapshot = (await listSnapshots(host, id)).find((s) => s.id === snapshotId);
  if (!snapshot)
    throw new ZenithError('ZEN_NOT_FOUND', `VM ${id} has no snapshot ${snapshotId}`, {
      snapshotId,
    });
  return snapshot;
}

export function revertSnapshot(
  host: ActionHost,
  id: string,
  snapshotId: string,
  context: ActionContext,
): Promise<DiscoveredVm> {
  return onSnapshot(host, id, snapshotId, context, 'RevertToSnapshot_Task', {});
}

export function deleteSnapshot(
  host: ActionHost,
  id: string,
  snapshotId: string,
  context: ActionContext,
): Promise<DiscoveredVm> {
  return onSnapshot(host, id, snapshotId, context, 'RemoveSnapshot_Task', {
    removeChildren: false,
  });
}

/** Runs a task on one of the VM's snapshots, then reads the VM as the task left it. */
async function onSnapshot(
  host: ActionHost,
  id: string,
  snapshotId: string,
  context: ActionContext,
  method: 'RevertToSnapshot_Task' | 'RemoveSnapshot_Task',
  args: Record<string, VimArg>,
): Promise<DiscoveredVm> {
  const snapshot = await snapshotOf(host, id, snapshotId);
  await runTask(host, method, snapshot.ref, args, context);
  return host.readVm(id);
}

export async function destroyVm(
  host: ActionHost,
  id: string,
  context: ActionContext,
): Promise<null> {
  await vmTaskVoid(host, id, 'Destroy_Task', context);
  await host.vmGone(id);
  return null;
}

async function vmTaskVoid(
  host: ActionHost,
  id: string,
  method: string,
  context: ActionContext,
): Promise<void> {
  await runTask(host, method, vmRef(id), {}, context);
}
