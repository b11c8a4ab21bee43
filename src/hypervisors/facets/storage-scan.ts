/**
 * The storage-scan facet: the images that lie in a host's storage (its storage roots for QEMU
 * hosts and agents), found by reading headers only — never whole files — and each disk's owner
 * where the family records one, so that disks no defined VM uses any more can be told apart.
 */
import type { ActionContext } from '../driver-types.js';

export type ScannedImageFormat = 'qcow2' | 'vmdk' | 'raw' | 'iso' | 'kernel' | 'initrd';
export type ScannedImageKind = 'disk' | 'iso' | 'kernel' | 'initrd';

export interface ScannedImage {
  /** The file as found inside its root (a link's own path: the name the operator gave it). */
  path: string;
  /** The root it was found in. */
  root: string;
  format: ScannedImageFormat;
  kind: ScannedImageKind;
  /** The size the guest sees (an ISO's volume; a kernel's or initrd's file size). */
  virtualBytes: number;
  /** The file's length. */
  fileBytes: number;
  /** What it takes on the storage (allocated blocks): less than fileBytes for a sparse file. */
  allocatedBytes: number;
  /** Its backing file as an absolute path (qcow2, VMDK), or null. */
  backingFile: string | null;
  /** An ISO's volume label. */
  label: string | null;
  /** Why its header cannot be believed (a corrupt qcow2): the scan goes on, the image says so. */
  problem: string | null;
  /** Where a link points (inside the roots: links out of them are not followed). */
  linkTarget: string | null;
  modifiedAt: number;
  /** The VM that claimed it as its disk (by UUID and name), where the family records claims. */
  owner: { vmUuid: string; vmName: string } | null;
}

export interface ScannedRoot {
  root: string;
  /** A root that could not be read: a coded error, the others are still scanned. */
  error: { code: string; message: string } | null;
}

/** What a scan passed over, by reason: the scan never fails for one bad entry. */
export interface ScanSkips {
  /** Links whose target is outside the roots (never followed). */
  linksOutside: number;
  /** Links that do not resolve (dangling, or a loop). */
  brokenLinks: number;
  /** Directories deeper than the scan descends. */
  tooDeep: number;
  /** Entries that could not be read (permissions, removed during the scan). */
  unreadable: number;
  /** Files that are no image of a known kind. */
  notImages: number;
}

export interface StorageScan {
  startedAt: number;
  finishedAt: number;
  roots: ScannedRoot[];
  images: ScannedImage[];
  skipped: ScanSkips;
  /** True when the scan stopped at its file limit: what lies beyond was not looked at. */
  truncated: boolean;
  /** The VMs defined on this host (by UUID): a disk they claim is in use. */
  definedVmUuids: string[];
}

export interface StorageScanFacet {
  /** Scans every storage root of the host; an unreadable root is reported in `roots`, not thrown. */
  scanStorage(context: ActionContext): Promise<StorageScan>;
}
