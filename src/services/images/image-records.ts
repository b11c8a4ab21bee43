/**
 * An image as the library shows it: its stored row, with what it is used as decided against the
 * inventory as it is now (a VM defined or gone since the scan changes the answer at once).
 */
import type {
  ScanSkips,
  ScannedImageFormat,
  ScannedImageKind,
  ScannedRoot,
} from '../../hypervisors/driver.js';
import type { ImagesTable } from '../../store/schema.js';
import type { InventoryService } from '../inventory/inventory-service.js';

/**
 * - image: no VM claims it (a base image, install media, a kernel): free to use;
 * - in-use: a VM's disk, and that VM is defined (on the scanning host, or present in the inventory);
 * - vm-missing: a VM's disk whose VM Zenith knew but no host reports now (deleted outside Zenith,
 *   or on a host that is away): likely reclaimable — check its host first;
 * - unregistered: a VM's disk whose VM no host defines and Zenith never knew.
 */
export type ImageUsage = 'image' | 'in-use' | 'vm-missing' | 'unregistered';

export interface ImageRecord {
  id: string;
  hostId: string;
  hostName: string | null;
  connectionId: string;
  path: string;
  root: string;
  name: string;
  format: ScannedImageFormat;
  kind: ScannedImageKind;
  virtualBytes: number;
  fileBytes: number;
  allocatedBytes: number;
  backingFile: string | null;
  label: string | null;
  problem: { code: 'ZEN_IMAGE_CORRUPT'; message: string } | null;
  linkTarget: string | null;
  modifiedAt: number;
  owner: { vmUuid: string; vmName: string; vmId: string | null } | null;
  usage: ImageUsage;
  /** A disk no defined VM uses (usage unregistered or vm-missing): space an operator may reclaim. */
  orphaned: boolean;
  status: 'present' | 'missing';
  missingSince: number | null;
  firstSeenAt: number;
  scannedAt: number;
}

export interface ScanSummary {
  hostId: string;
  images: number;
  created: number;
  updated: number;
  missing: number;
  orphaned: number;
  /** What the orphaned disks take on the storage. */
  orphanedBytes: number;
  corrupt: number;
  roots: ScannedRoot[];
  skipped: ScanSkips;
  truncated: boolean;
  durationMs: number;
}

/** What a disk claimed by this VM UUID is used as now. */
export function usageOf(
  inventory: Pick<InventoryService, 'index'>,
  ownerUuid: string | null,
  definedOnHost: boolean,
): ImageUsage {
  if (ownerUuid === null) return 'image';
  if (definedOnHost) return 'in-use';
  const vms = inventory.index.withFact('vm.uuid', ownerUuid).filter((o) => o.kind === 'vm');
  if (vms.some((vm) => vm.status === 'present')) return 'in-use';
  return vms.length > 0 ? 'vm-missing' : 'unregistered';
}

export function imageOf(row: ImagesTable, inventory: InventoryService): ImageRecord {
  const usage = usageOf(inventory, row.owner_vm_uuid, row.owner_defined === 1);
  const ownerVm =
    row.owner_vm_uuid === null
      ? undefined
      : inventory.index.withFact('vm.uuid', row.owner_vm_uuid).find((o) => o.kind === 'vm');
  return {
    id: row.id,
    hostId: row.host_id,
    hostName: inventory.index.get(row.host_id)?.name ?? null,
    connectionId: row.connection_id,
    path: row.path,
    root: row.root,
    name: row.name,
    // Written from a scan's checked values only.
    format: row.format as ScannedImageFormat,
    kind: row.kind as ScannedImageKind,
    virtualBytes: Number(row.virtual_bytes),
    fileBytes: Number(row.file_bytes),
    allocatedBytes: Number(row.allocated_bytes),
    backingFile: row.backing_file,
    label: row.label,
    problem: row.problem === null ? null : { code: 'ZEN_IMAGE_CORRUPT', message: row.problem },
    linkTarget: row.link_target,
    modifiedAt: Number(row.modified_at),
    owner:
      row.owner_vm_uuid === null
        ? null
        : {
            vmUuid: row.owner_vm_uuid,
            vmName: row.owner_vm_name ?? '',
            vmId: ownerVm?.id ?? null,
          },
    usage,
    orphaned: usage === 'unregistered' || usage === 'vm-missing',
    status: row.status,
    missingSince: row.missing_since === null ? null : Number(row.missing_since),
    firstSeenAt: Number(row.first_seen_at),
    scannedAt: Number(row.scanned_at),
  };
}
