/** The recorded facts a report meters, read from the store: sizes over time, measured usage. */
import type { Db } from '../../store/store.js';
import type { ManagedObject } from '../inventory/model.js';
import type { InventoryIndex } from '../inventory/inventory-index.js';
import type { MeterHost, MeterVm, VmSize } from './meter-input.js';
import type { MeasuredSample } from './report-accumulator.js';

/** Every size record up to the end of the period (the one in force at its start included). */
export async function loadAllocations(db: Db, to: number): Promise<Map<string, VmSize[]>> {
  const rows = await db
    .selectFrom('vm_allocations')
    .select(['vm_id', 'from_ts', 'cpus', 'memory_bytes', 'disk_bytes'])
    .where('from_ts', '<', to)
    .orderBy('vm_id')
    .orderBy('from_ts')
    .orderBy('id')
    .execute();
  const allocations = new Map<string, VmSize[]>();
  for (const row of rows) {
    const size: VmSize = {
      from: Number(row.from_ts),
      cpus: Number(row.cpus),
      // Whole MiB, rounded up, as the current size is (meterVm).
      memoryMiB: Math.ceil(Number(row.memory_bytes) / 2 ** 20),
      diskMiB: Math.ceil(Number(row.disk_bytes) / 2 ** 20),
    };
    const list = allocations.get(row.vm_id);
    // Two records at one instant: the later one is the size from then on.
    if (list && list[list.length - 1]!.from === size.from) list[list.length - 1] = size;
    else if (list) list.push(size);
    else allocations.set(row.vm_id, [size]);
  }
  return allocations;
}

/** The 5-minute rollups of the metrics history in the period that cover some time. */
export async function loadMeasured(db: Db, from: number, to: number): Promise<MeasuredSample[]> {
  const rows = await db
    .selectFrom('vm_metric_rollups')
    .select([
      'vm_id',
      'bucket_start',
      'cpu_ms',
      'disk_read_bytes',
      'disk_write_bytes',
      'net_span_ms',
      'net_rx_bytes',
      'net_tx_bytes',
    ])
    .where('bucket_start', '>=', from)
    .where('bucket_start', '<', to)
    .where('span_ms', '>', 0)
    .orderBy('vm_id')
    .orderBy('bucket_start')
    .execute();
  return rows.map((row) => ({
    vmId: row.vm_id,
    at: Number(row.bucket_start),
    cpuMs: Number(row.cpu_ms),
    diskReadBytes: Number(row.disk_read_bytes),
    diskWriteBytes: Number(row.disk_write_bytes),
    netSpanMs: Number(row.net_span_ms),
    netRxBytes: Number(row.net_rx_bytes),
    netTxBytes: Number(row.net_tx_bytes),
  }));
}

export function meterVm(vm: ManagedObject): MeterVm {
  const number = (key: string) => {
    const value = vm.facts[key];
    return typeof value === 'number' && value > 0 ? value : 0;
  };
  return {
    id: vm.id,
    name: vm.name,
    cpus: Math.round(number('cpu.count')),
    // Allocations are metered in whole MiB (rounded up), so every product stays an exact integer.
    memoryMiB: Math.ceil(number('memory.bytes') / 2 ** 20),
    diskMiB: Math.ceil(number('disk.totalBytes') / 2 ** 20),
    facts: { ...vm.facts, ...vm.userFacts },
    tags: vm.tags,
  };
}

/** A host as rates match it: its facts plus its cluster, datacenter and names. */
export function meterHost(host: ManagedObject, index: InventoryIndex): MeterHost {
  const cluster = host.parentId ? index.get(host.parentId) : undefined;
  const datacenter = cluster?.parentId ? index.get(cluster.parentId) : undefined;
  const clusterName = cluster?.kind === 'cluster' ? cluster.name : '(none)';
  return {
    id: host.id,
    name: host.name,
    cluster: clusterName,
    hypervisor: String(host.facts['hypervisor.type'] ?? '(unknown)'),
    facts: {
      ...host.facts,
      ...host.userFacts,
      host: host.name,
      'host.id': host.id,
      cluster: clusterName,
      'cluster.id': cluster?.id ?? null,
      datacenter: datacenter?.name ?? null,
    },
  };
}

/** The identity whose request created each VM (vm.create and vm.clone tasks that succeeded). */
export async function loadCreators(db: Db): Promise<Map<string, string>> {
  const tasks = await db
    .selectFrom('tasks')
    .select(['owner_id', 'result'])
    .where('kind', 'in', ['vm.create', 'vm.clone'])
    .where('state', '=', 'succeeded')
    .execute();
  if (tasks.length === 0) return new Map();
  const names = new Map(
    (await db.selectFrom('identities').select(['id', 'name']).execute()).map((r) => [r.id, r.name]),
  );
  const creators = new Map<string, string>();
  for (const task of tasks) {
    const vmId = task.result ? (JSON.parse(task.result) as { vmId?: unknown }).vmId : undefined;
    if (typeof vmId === 'string') creators.set(vmId, names.get(task.owner_id) ?? task.owner_id);
  }
  return creators;
}
