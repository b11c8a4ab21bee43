/** The shapes of the VM-centred answers the console reads (docs/api.md): tasks, snapshots, placement. */
// The metrics chart points are the server's own declaration (type only: nothing of it is bundled).
import type { MetricPoint as MetricsPoint } from '../../../src/services/metrics/metric-deltas.ts';
import type { ManagedObject } from './types.ts';

export type { MetricsPoint };

export interface TaskDetail {
  id: string;
  kind: string;
  targetId: string | null;
  state: string;
  progress: number;
  progressMessage: string | null;
  progressDetails: Record<string, number | string> | null;
  params: Record<string, unknown>;
  result: unknown;
  error: { code: string; message: string } | null;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

export const finishedTaskStates = ['succeeded', 'failed', 'cancelled'];

export interface Snapshot {
  id: string;
  name: string;
  createdAt: number;
  powerState: string;
}

export interface VmCapabilities {
  vmId: string;
  connectionType: string;
  simulated: boolean;
  capabilities: string[];
}

export interface PlacementCandidate {
  hostId: string;
  hostName: string;
  score: number;
  loadAfter: number;
}

export interface PlacementRejection {
  hostId: string;
  hostName: string;
  reason: { kind: string; message: string };
}

export interface PlacementDecision {
  vm: { id: string | null; name: string; cpu: number; memoryBytes: number; type: string | null };
  chosen: PlacementCandidate | null;
  candidates: PlacementCandidate[];
  rejected: PlacementRejection[];
  hostsConsidered: number;
  feasibleHosts: number;
}

/** A VM not created yet, as the placement preview and POST /vms take it. */
export interface DraftVm {
  name: string;
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
}

export interface NewVm extends DraftVm {
  hostId?: string;
  options?: Record<string, unknown>;
}

export interface MetricsHistory {
  vmId: string;
  stepSeconds: number;
  points: MetricsPoint[];
}

export type HostObject = ManagedObject;
