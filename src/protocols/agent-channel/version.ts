/**
 * The agent channel's protocol version, exchanged in the handshake. Within a
 * major version the protocol only grows: a minor version adds methods (and
 * optional fields), so both ends speak the older one's methods and a call
 * the older end does not know is answered ZEN_UNSUPPORTED. Another major
 * version is another protocol: the control plane refuses the agent with
 * ZEN_AGENT_INCOMPATIBLE and says which side to upgrade.
 */
import { ZenithError } from '../../core/errors.js';

export interface ProtocolVersion {
  major: number;
  minor: number;
}

/**
 * What this build speaks. 1.0: the channel as it was before it carried a version (driver calls,
 * live migration, consoles, renewal). 1.1: describeVm and runVm (the portable-VM facet), NIC MACs
 * in migration packages. 1.2: configureHa, readHaHeartbeats and clearReleased (the agent's side of
 * high availability: storage heartbeat, isolation response, self-fencing). 1.3: discardMovedVms (a
 * host back after a failover removes what is left of the VMs that moved away). 1.4: keepOutgoing
 * (the source of a migration that could not finish takes the VM back). 1.5: the disk-stream facet
 * (listStreamDisks … releaseCheckpoint: backup and restore of the agent's VMs). 1.6: overlays
 * (a new disk's `backing`) and mergeOverlay: replica chains for replication. 1.7: runVm's
 * `paused` (a VM started with its guest not yet running, so its console is read from the start)
 * and waitForGuestAgent (the guest-agent facet). 1.8: the synchronous-replication facet
 * (startReplica … stopReplica on the recovery host, startSyncMirror … stopSyncMirror on the
 * protected VM's host). 1.9: mergeReplicaPoint (a point of a running replica folded into the image
 * under it, inside the replica), and a replica's listen address optional (the agent's migration
 * address); the control plane offers the synchronous-replication facet from 1.9 only. 1.10: the
 * storage-scan facet (startStorageScan, readStorageScan: the images in the host's storage roots, by
 * their headers).
 */
export const channelProtocol: ProtocolVersion = { major: 1, minor: 10 };

/** Agents from before the handshake carried a version speak 1.0. */
export const unversioned: ProtocolVersion = { major: 1, minor: 0 };

const pattern = /^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$/;

export function formatVersion(version: ProtocolVersion): string {
  return `${version.major}.${version.minor}`;
}

/** "1.1" → {major: 1, minor: 1}; null for anything else. */
export function parseVersion(text: string): ProtocolVersion | null {
  const match = pattern.exec(text);
  return match ? { major: Number(match[1]), minor: Number(match[2]) } : null;
}

/** Whether `version` includes what `since` introduced. */
export function speaks(version: ProtocolVersion, since: ProtocolVersion): boolean {
  return version.major === since.major && version.minor >= since.minor;
}

/**
 * The control plane's check of an agent's version (null: an agent from before versions). Answers
 * the version they will speak; refuses another major with ZEN_AGENT_INCOMPATIBLE.
 */
export function acceptAgentVersion(
  announced: string | undefined,
  own: ProtocolVersion = channelProtocol,
): ProtocolVersion {
  const agent = announced === undefined ? unversioned : parseVersion(announced);
  const details = {
    agentProtocol: announced ?? formatVersion(unversioned),
    controlPlaneProtocol: formatVersion(own),
  };
  if (!agent)
    throw new ZenithError(
      'ZEN_AGENT_INCOMPATIBLE',
      `the agent announced protocol '${announced}', which is not a version (MAJOR.MINOR): upgrade the agent to this control plane's version`,
      details,
    );
  if (agent.major < own.major)
    throw new ZenithError(
      'ZEN_AGENT_INCOMPATIBLE',
      `the agent speaks the agent channel protocol ${formatVersion(agent)}, this control plane ${formatVersion(own)}: upgrade the agent to this control plane's version`,
      details,
    );
  if (agent.major > own.major)
    throw new ZenithError(
      'ZEN_AGENT_INCOMPATIBLE',
      `the agent speaks the agent channel protocol ${formatVersion(agent)}, newer than this control plane's ${formatVersion(own)}: upgrade the control plane, or run an agent of its version`,
      details,
    );
  // The older of the two minors: the newer end speaks it too.
  return { major: own.major, minor: Math.min(agent.minor, own.minor) };
}
