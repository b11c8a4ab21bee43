/**
 * The high-availability calls of the public API (src/api/ha.ts): every watched host's state and
 * fencing, each VM's protection, and the failovers with each VM's restart. Read-only: HA acts by
 * itself, and the console only shows what it did.
 */
import type { AnswerOf } from '../../../src/api/operation.ts';
import type {
  FailoverView,
  haStatus,
  HaHostView,
  HaVmView,
  RestartView,
  VsphereHaClusterView,
} from '../../../src/api/ha.ts';
import type { ApiClient } from './client.ts';

export type { FailoverView, HaHostView, HaVmView, RestartView, VsphereHaClusterView };
export type HaStatus = AnswerOf<typeof haStatus>;

export function haStatusOf(client: ApiClient, signal?: AbortSignal): Promise<HaStatus> {
  return client.call('GET', '/ha', undefined, signal);
}

export async function haVms(client: ApiClient, signal?: AbortSignal): Promise<HaVmView[]> {
  return client.items<HaVmView>('/ha/vms', signal);
}

export function haVm(client: ApiClient, vmId: string, signal?: AbortSignal): Promise<HaVmView> {
  return client.call('GET', `/ha/vms/${encodeURIComponent(vmId)}`, undefined, signal);
}

/** Newest first, each with its restarts in start order. */
export async function failovers(
  client: ApiClient,
  limit = 50,
  signal?: AbortSignal,
): Promise<FailoverView[]> {
  return client.items<FailoverView>(`/ha/failovers?limit=${limit}`, signal);
}
