/**
 * Synchronous mirrors of a QEMU driver's VMs by VM id (`driver.syncMirrors`), for whoever holds the
 * driver (the agent, once the replication service's sync mode calls it): sync-mirror-source.ts on
 * the VM the id names, and the disk's write latency beside it. Not a facet yet: only QEMU hosts
 * mirror synchronously.
 */
import {
  diskWriteLatency,
  trackWriteLatency,
  type DiskWriteLatency,
} from './disk-write-latency.js';
import type { QemuHost } from './qemu-host.js';
import {
  severSyncMirror,
  startSyncMirror,
  stopSyncMirror,
  syncMirrorStatus,
  type SyncMirrorOptions,
  type SyncMirrorStatus,
  type SyncMirrorTarget,
} from './sync-mirror-source.js';

export class QemuSyncMirrors {
  constructor(private readonly host: Pick<QemuHost, 'vm' | 'clock'>) {}

  start(
    vmExternalId: string,
    diskId: string,
    target: SyncMirrorTarget,
    options: Omit<SyncMirrorOptions, 'clock'> = {},
  ): Promise<SyncMirrorStatus> {
    return startSyncMirror(this.host.vm(vmExternalId), diskId, target, {
      ...options,
      clock: this.host.clock,
    });
  }

  status(vmExternalId: string, diskId: string): Promise<SyncMirrorStatus> {
    return syncMirrorStatus(this.host.vm(vmExternalId), diskId);
  }

  stop(vmExternalId: string, diskId: string): Promise<SyncMirrorStatus> {
    return stopSyncMirror(this.host.vm(vmExternalId), diskId, { clock: this.host.clock });
  }

  trackWriteLatency(vmExternalId: string, diskId: string, boundariesNs: number[]): Promise<void> {
    return trackWriteLatency(this.host.vm(vmExternalId), diskId, boundariesNs);
  }

  writeLatency(vmExternalId: string, diskId: string): Promise<DiskWriteLatency> {
    return diskWriteLatency(this.host.vm(vmExternalId), diskId);
  }

  sever(vmExternalId: string, diskId: string): Promise<boolean> {
    return severSyncMirror(this.host.vm(vmExternalId), diskId);
  }
}
