/** The shapes of the VM-centred answers the console reads: the contract's (src/api), as types only. */
import type { MetricPoint as MetricsPoint, MetricsHistory } from '../../../src/api/metrics.ts';
import type {
  Candidate as PlacementCandidate,
  DraftVm as DraftVmBody,
  PlacementDecision,
  Rejection as PlacementRejection,
} from '../../../src/api/placement.ts';
import type { SnapshotView as Snapshot } from '../../../src/api/snapshots.ts';
import type { TaskState, TaskView } from '../../../src/api/tasks.ts';
import type { NewVm, VmCapabilities } from '../../../src/api/vms.ts';
import type { ManagedObject } from './types.ts';

export type {
  MetricsHistory,
  MetricsPoint,
  NewVm,
  PlacementCandidate,
  PlacementDecision,
  PlacementRejection,
  Snapshot,
  VmCapabilities,
};

export type TaskDetail = TaskView;

/** A VM not created yet, as the create-VM wizard holds it (every size chosen) and previews it. */
export type DraftVm = Required<Pick<DraftVmBody, 'name' | 'cpus' | 'memoryBytes' | 'diskBytes'>>;

export const finishedTaskStates: readonly TaskState[] = ['succeeded', 'failed', 'cancelled'];

export type HostObject = ManagedObject;
