/**
 * An agent host's synchronous-replication facet: calls over the channel to the facet of the
 * agent's QEMU driver (protocol 1.9: 1.8's calls and mergeReplicaPoint). The replica's daemons run detached at the agent and outlive
 * it; the mirror lives in the VM's QEMU: nothing here holds either between calls. The key crosses
 * in the call's arguments (the channel is TLS with the agent's certificate), and the agent keeps
 * it in 0600 files only.
 */
import type {
  Replica,
  ReplicaPointMerge,
  ReplicaPointRequest,
  ReplicaPointTaken,
  ReplicaStart,
  SyncMirrorStartOptions,
  SyncMirrorStatus,
  SyncMirrorTarget,
  SyncReplicationFacet,
} from '../facets/sync-replication.js';
import type { AgentCaller } from './agent-caller.js';

/** Starting, freezing and stopping daemons (a few seconds each, per disk) at most this long. */
const replicaTimeoutMs = 2 * 60_000;
/** Folding a point copies its data (the agent's daemon gives up after 9 minutes). */
const mergeTimeoutMs = 10 * 60_000;
/** A mirror's first pass waits this long at the agent unless told otherwise (the facet's default). */
const defaultReadyMs = 10 * 60_000;

export class AgentSyncReplication implements SyncReplicationFacet {
  constructor(private readonly agent: AgentCaller) {}

  startReplica(request: ReplicaStart): Promise<Replica> {
    return this.agent.call('startReplica', [request], replicaTimeoutMs);
  }

  findReplica(directory: string): Promise<Replica | null> {
    return this.agent.call('findReplica', [directory], replicaTimeoutMs);
  }

  takePoint(directory: string, points: ReplicaPointRequest[]): Promise<ReplicaPointTaken[]> {
    return this.agent.call('takeReplicaPoint', [directory, points], replicaTimeoutMs);
  }

  async mergePoint(directory: string, merge: ReplicaPointMerge): Promise<void> {
    await this.agent.call('mergeReplicaPoint', [directory, merge], mergeTimeoutMs);
  }

  async stopReplica(directory: string): Promise<void> {
    await this.agent.call('stopReplica', [directory], replicaTimeoutMs);
  }

  startMirror(
    vmExternalId: string,
    diskId: string,
    target: SyncMirrorTarget,
    options: SyncMirrorStartOptions = {},
  ): Promise<SyncMirrorStatus> {
    // The agent's own wait for the first pass, and time to set up and answer beside it.
    const timeoutMs = (options.readyTimeoutMs ?? defaultReadyMs) + 60_000;
    return this.agent.call('startSyncMirror', [vmExternalId, diskId, target, options], timeoutMs);
  }

  mirrorStatus(vmExternalId: string, diskId: string): Promise<SyncMirrorStatus> {
    return this.agent.call('syncMirrorStatus', [vmExternalId, diskId]);
  }

  stopMirror(vmExternalId: string, diskId: string): Promise<SyncMirrorStatus> {
    return this.agent.call('stopSyncMirror', [vmExternalId, diskId], replicaTimeoutMs);
  }
}
