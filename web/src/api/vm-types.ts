/** The shapes of the VM-centred answers the console reads (docs/api.md): tasks, snapshots, placement. */
// The server's own declarations from the contract (types only: nothing of the server is bundled).
import type { MetricPoint as MetricsPoint } from '../../../src/api/metrics.ts';
import type { TaskState, TaskView } from '../../../src/api/tasks.ts';
import type { ManagedObject } from './types.ts';

export type { MetricsPoint };

export type TaskDetail = TaskView;

export const finishedTaskStates: readonly TaskState[] = ['succeeded', 'failed', 'cancelled'];

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
