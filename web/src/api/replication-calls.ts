/**
 * The replication and recovery calls of the public API (src/api/replication.ts): sites, the
 * replicated VMs with their current RPO and points in time, recovery plans with their last run.
 */
import type { AnswerOf } from '../../../src/api/operation.ts';
import type {
  replicationReport,
  RecoveryPlanView,
  RecoveryRunView,
  ReplicationView,
  SiteView,
} from '../../../src/api/replication.ts';
import type { ApiClient } from './client.ts';

export type { RecoveryPlanView, RecoveryRunView, ReplicationView, SiteView };

export async function sites(client: ApiClient, signal?: AbortSignal): Promise<SiteView[]> {
  return client.items<SiteView>('/sites', signal);
}

export async function replications(
  client: ApiClient,
  signal?: AbortSignal,
): Promise<ReplicationView[]> {
  return client.items<ReplicationView>('/replications', signal);
}

export type RpoReportRow = AnswerOf<typeof replicationReport>['items'][number];

/** The RPO achieved point by point, for one VM (oldest first). */
export async function rpoReport(
  client: ApiClient,
  vmId: string,
  signal?: AbortSignal,
): Promise<RpoReportRow[]> {
  return client.items<RpoReportRow>(`/replications/report?vm=${encodeURIComponent(vmId)}`, signal);
}

export async function recoveryPlans(
  client: ApiClient,
  signal?: AbortSignal,
): Promise<RecoveryPlanView[]> {
  return client.items<RecoveryPlanView>('/recovery-plans', signal);
}
