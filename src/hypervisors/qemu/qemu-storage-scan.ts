/**
 * The QEMU host's storage-scan facet: its storage roots, read header by header
 * (storage-scanner.ts), with each disk's owner from the claims kept in the roots
 * (disk-claims.ts) and the VMs defined here, so that the disks of VMs no host
 * defines any more can be found.
 */
import type { ActionContext } from '../driver-types.js';
import type { StorageScan, StorageScanFacet } from '../facets/storage-scan.js';
import type { QemuHost } from './qemu-host.js';
import { scanStorageRoots, type ScanLimits } from './storage-scanner.js';

export class QemuStorageScan implements StorageScanFacet {
  constructor(
    private readonly host: QemuHost,
    private readonly limits: Partial<ScanLimits> = {},
  ) {}

  async scanStorage(context: ActionContext): Promise<StorageScan> {
    const owners = new Map<string, { vmUuid: string; vmName: string }>();
    for (const claim of this.host.claims.all())
      owners.set(claim.file, { vmUuid: claim.vm, vmName: claim.name });
    const definedVmUuids = [...this.host.all()]
      .map((vm) => vm.record.spec.uuid)
      .filter((uuid): uuid is string => uuid !== undefined);
    const scan = await scanStorageRoots(this.host.storageRoots, {
      clock: this.host.clock,
      context,
      owners: (file) => owners.get(file) ?? null,
      limits: this.limits,
    });
    return { ...scan, definedVmUuids };
  }
}
