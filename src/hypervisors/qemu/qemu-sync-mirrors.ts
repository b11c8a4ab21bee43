/**
 * Synchronous mirrors of a QEMU driver's VMs by VM id (`driver.syncMirrors`): sync-mirror-source.ts
 * on the VM the id names, and the disk's write latency and a cut of the connection beside it. The
 * synchronous-replication facet's VM end (qemu-sync-replication.ts) is these; what stays here
 * only is what measurements and tests of the mirror use.
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
