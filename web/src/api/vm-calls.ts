/**
 * The VM-centred calls of the public API (tasks of a VM, snapshots, clone, rename, reconfigure,
 * migrate, delete, create, placement preview, metrics history), over the app's ApiClient.
 */
import { historyOf, type ApiClient, type HistoryRange } from './client.ts';
import type { ManagedObject, Page } from './types.ts';
import type {
  DraftVm,
  MetricsHistory,
  NewVm,
  PlacementDecision,
  Snapshot,
  TaskDetail,
  VmCapabilities,
} from './vm-types.ts';

const vmPath = (id: string) => `/vms/${encodeURIComponent(id)}`;

export function vmCapabilities(client: ApiClient, vmId: string): Promise<VmCapabilities> {
  return client.call('GET', `${vmPath(vmId)}/capabilities`);
}

export async function tasksOfVm(
  client: ApiClient,
  vmId: string,
  limit = 20,
): Promise<TaskDetail[]> {
  const params = new URLSearchParams({ targetId: vmId, limit: String(limit) });
  const page = await client.call<Page<TaskDetail>>('GET', `/tasks?${params.toString()}`);
  return page.items;
}

export function taskById(client: ApiClient, taskId: string): Promise<TaskDetail> {
  return client.call('GET', `/tasks/${encodeURIComponent(taskId)}`);
}

export async function snapshotsOf(client: ApiClient, vmId: string): Promise<Snapshot[]> {
  return client.items<Snapshot>(`${vmPath(vmId)}/snapshots`);
}

export function takeSnapshot(client: ApiClient, vmId: string, name: string): Promise<TaskDetail> {
  return client.call('POST', `${vmPath(vmId)}/snapshots`, { name });
}

export function revertSnapshot(client: ApiClient, vmId: string, id: string): Promise<TaskDetail> {
  return client.call('POST', `${vmPath(vmId)}/snapshots/${encodeURIComponent(id)}/revert`);
}

export function deleteSnapshot(client: ApiClient, vmId: string, id: string): Promise<TaskDetail> {
  return client.call('DELETE', `${vmPath(vmId)}/snapshots/${encodeURIComponent(id)}`);
}

export function cloneVm(
  client: ApiClient,
  vmId: string,
  clone: { name: string; linked: boolean },
): Promise<TaskDetail> {
  return client.call('POST', `${vmPath(vmId)}/clone`, clone);
}

export function renameVm(client: ApiClient, vmId: string, name: string): Promise<TaskDetail> {
  return client.call('POST', `${vmPath(vmId)}/rename`, { name });
}

export function reconfigureVm(
  client: ApiClient,
  vmId: string,
  change: { cpus?: number; memoryBytes?: number },
): Promise<TaskDetail> {
  return client.call('POST', `${vmPath(vmId)}/reconfigure`, change);
}

export function migrateVm(
  client: ApiClient,
  vmId: string,
  migration: { targetHostId: string; withStorage: boolean; maxBandwidthBytesPerSecond?: number },
): Promise<TaskDetail> {
  return client.call('POST', `${vmPath(vmId)}/migrate`, migration);
}

export function deleteVm(client: ApiClient, vmId: string): Promise<TaskDetail> {
  return client.call('DELETE', vmPath(vmId));
}

export function createVm(client: ApiClient, vm: NewVm): Promise<TaskDetail> {
  return client.call('POST', '/vms', vm);
}

export async function listHosts(client: ApiClient): Promise<ManagedObject[]> {
  const page = await client.call<Page<ManagedObject>>('GET', '/hosts?limit=500&sort=name');
  return page.items;
}

/** Where an existing VM (by id) could move, or where a new one would go. */
export function placementPreview(
  client: ApiClient,
  vm: string | DraftVm,
  topCandidates = 10,
): Promise<PlacementDecision> {
  return client.call('POST', '/placement/preview', { vm, topCandidates });
}

export function metricsHistory(
  client: ApiClient,
  vmId: string,
  range: HistoryRange,
  signal?: AbortSignal,
): Promise<MetricsHistory> {
  return historyOf(client, `${vmPath(vmId)}/metrics/history`, range, signal);
}
