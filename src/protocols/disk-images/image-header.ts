/**
 * What a file is, from its first bytes: a qcow2 or VMDK disk image, an ISO 9660 file system, a
 * Linux kernel (bzImage), an initramfs, a raw disk (by its name: raw has no header), or none of
 * these. Pure: the caller reads the bytes (storage scans read 4 KiB of each file, and 6 bytes at
 * 32 KiB for ISO files), so thousands of files are sorted in the time qemu-img takes for dozens.
 * Facts from the published formats: qcow2 (QEMU's docs/interop/qcow2.txt), VMDK 1.1 (sparse
 * extent header and descriptor), ECMA-119 (the primary volume descriptor at sector 16), the Linux
 * boot protocol ("HdrS" at 0x202).
 */

export type ImageFormat = 'qcow2' | 'vmdk' | 'raw' | 'iso' | 'kernel' | 'initrd';
/** What an image is for: a disk, install media, or the two halves of a direct kernel boot. */
export type ImageKind = 'disk' | 'iso' | 'kernel' | 'initrd';

export const kindOfFormat: Record<ImageFormat, ImageKind> = {
  qcow2: 'disk',
  vmdk: 'disk',
  raw: 'disk',
  iso: 'iso',
  kernel: 'kernel',
  initrd: 'initrd',
};

/** How many bytes from the start a header read takes. */
export const headBytes = 4096;
/** Where an ISO's primary volume descriptor starts (sector 16 of 2048 bytes), and how much of it is read. */
export const isoDescriptorOffset = 0x8000;
export const isoDescriptorBytes = 0x100;

export interface ImageHeader {
  format: ImageFormat;
  /** The size the guest sees (for an ISO its volume; for a kernel or initrd the file's size). */
  virtualBytes: number;
  /** The backing file as the header names it (qcow2, VMDK parentFileNameHint), unresolved. */
  backingFile: string | null;
  /** A volume label (ISO). */
  label: string | null;
  /** Why the header cannot be believed: the file says it is of this format, but is not a valid one. */
  problem: string | null;
  /**
   * Where the bytes of the backing file's name lie when they are past the head that was read
   * (the caller reads them and calls backingName).
   */
  backingAt?: { offset: number; length: number };
}

const qcow2Magic = 0x514649fb;
const vmdkMagic = 0x564d444b; // 'KDMV' little-endian
const maxQcow2BackingName = 1023;
const rawNames = /\.(img|raw)$/i;
const initrdNames = /(initrd|initramfs)/i;

/** The byte ranges a header read needs beyond the head: the ISO descriptor for files large enough. */
export function needsIsoDescriptor(fileBytes: number): boolean {
  return fileBytes >= isoDescriptorOffset + isoDescriptorBytes;
}

/**
 * Sorts one file by its head (the first `headBytes`, or fewer for a short file) and, for files
 * large enough, the 256 bytes at 32 KiB. Null: not an image of any known kind.
 */
export function readImageHeader(input: {
  name: string;
  fileBytes: number;
  head: Buffer;
  isoDescriptor: Buffer | null;
}): ImageHeader | null {
  const { name, fileBytes, head, isoDescriptor } = input;
  if (head.length >= 4 && head.readUInt32BE(0) === qcow2Magic) return qcow2Header(head, fileBytes);
  if (head.length >= 4 && head.readUInt32LE(0) === vmdkMagic) return vmdkSparseHeader(head);
  if (head.subarray(0, 21).toString('latin1') === '# Disk DescriptorFile')
    return vmdkDescriptorFile(head);
  if (isoDescriptor && isoDescriptor.subarray(1, 6).toString('latin1') === 'CD001')
    return isoHeader(isoDescriptor);
  if (head.length >= 0x206 && head.subarray(0x202, 0x206).toString('latin1') === 'HdrS')
    return plain('kernel', fileBytes);
  if (initrdNames.test(name) && compressedOrCpio(head)) return plain('initrd', fileBytes);
  // Named as an image of a format, but without its header: a damaged or mislabelled file.
  const claimed = /\.(qcow2|vmdk|iso)$/i.exec(name)?.[1]?.toLowerCase() as
    'qcow2' | 'vmdk' | 'iso' | undefined;
  if (claimed)
    return {
      ...plain(claimed, fileBytes),
      virtualBytes: 0,
      problem: `named .${claimed}, but it has no ${claimed} header`,
    };
  if (rawNames.test(name)) return plain('raw', fileBytes);
  return null;
}

/** The backing file's name from the bytes at `backingAt`. */
export function backingName(bytes: Buffer): string {
  return bytes.toString('utf8');
}

function plain(format: ImageFormat, fileBytes: number): ImageHeader {
  return { format, virtualBytes: fileBytes, backingFile: null, label: null, problem: null };
}

function corrupt(format: ImageFormat, problem: string): ImageHeader {
  return { format, virtualBytes: 0, backingFile: null, label: null, problem };
}

function qcow2Header(head: Buffer, fileBytes: number): ImageHeader {
  if (head.length < 32) return corrupt('qcow2', 'the qcow2 header is cut short');
  const version = head.readUInt32BE(4);
  if (version !== 2 && version !== 3)
    return corrupt('qcow2', `qcow2 version ${version} (only 2 and 3 exist)`);
  const clusterBits = head.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21)
    return corrupt('qcow2', `qcow2 cluster bits ${clusterBits} (9 to 21 are valid)`);
  const size = head.readBigUInt64BE(24);
  if (size > BigInt(Number.MAX_SAFE_INTEGER))
    return corrupt('qcow2', `qcow2 virtual size ${size} is beyond any disk`);
  const header: ImageHeader = {
    format: 'qcow2',
    virtualBytes: Number(size),
    backingFile: null,
    label: null,
    problem: null,
  };
  const backingOffset = head.readBigUInt64BE(8);
  const backingLength = head.readUInt32BE(16);
  if (backingOffset === 0n) return header;
  if (backingLength === 0 || backingLength > maxQcow2BackingName)
    return corrupt('qcow2', `qcow2 backing file name of ${backingLength} bytes`);
  const offset = Number(backingOffset);
  if (offset + backingLength > fileBytes || offset < 32)
    return corrupt('qcow2', 'the qcow2 backing file name lies outside the file');
  if (offset + backingLength <= head.length)
    header.backingFile = backingName(head.subarray(offset, offset + backingLength));
  else header.backingAt = { offset, length: backingLength };
  return header;
}

function vmdkSparseHeader(head: Buffer): ImageHeader {
  if (head.length < 512) return corrupt('vmdk', 'the VMDK header is cut short');
  const version = head.readUInt32LE(4);
  if (version < 1 || version > 3) return corrupt('vmdk', `VMDK version ${version}`);
  const sectors = head.readBigUInt64LE(12);
  if (sectors * 512n > BigInt(Number.MAX_SAFE_INTEGER))
    return corrupt('vmdk', `VMDK capacity of ${sectors} sectors is beyond any disk`);
  const descriptorOffset = Number(head.readBigUInt64LE(28)) * 512;
  const descriptorBytes = Number(head.readBigUInt64LE(36)) * 512;
  const descriptor =
    descriptorOffset > 0 && descriptorOffset < head.length
      ? head
          .subarray(descriptorOffset, Math.min(head.length, descriptorOffset + descriptorBytes))
          .toString('latin1')
      : '';
  return {
    format: 'vmdk',
    virtualBytes: Number(sectors) * 512,
    backingFile: parentHint(descriptor),
    label: null,
    problem: null,
  };
}

/** A descriptor file (monolithicFlat, twoGbMaxExtent…): its extents' sectors add up. */
function vmdkDescriptorFile(head: Buffer): ImageHeader {
  const text = head.toString('latin1');
  let sectors = 0;
  for (const match of text.matchAll(/^\s*(?:RW|RDONLY|NOACCESS)\s+(\d+)\s+\w+/gm))
    sectors += Number(match[1]);
  return {
    format: 'vmdk',
    virtualBytes: sectors * 512,
    backingFile: parentHint(text),
    label: null,
    problem: sectors === 0 ? 'a VMDK descriptor without extents' : null,
  };
}

function parentHint(descriptor: string): string | null {
  return /^parentFileNameHint\s*=\s*"([^"]*)"/m.exec(descriptor)?.[1] ?? null;
}

function isoHeader(descriptor: Buffer): ImageHeader {
  // ECMA-119 stores these both-endian; the little-endian halves come first.
  const blocks = descriptor.readUInt32LE(0x50);
  const blockBytes = descriptor.readUInt16LE(0x80);
  const label = descriptor.subarray(0x28, 0x48).toString('latin1').trim();
  return {
    format: 'iso',
    virtualBytes: blocks * blockBytes,
    backingFile: null,
    label: label === '' ? null : label,
    problem: blockBytes === 0 ? 'an ISO volume of 0-byte blocks' : null,
  };
}

/** gzip, xz, zstd, lz4, bzip2 or a newc cpio archive: what initramfs files are. */
function compressedOrCpio(head: Buffer): boolean {
  if (head.length < 6) return false;
  const hex = head.subarray(0, 6).toString('hex');
  return (
    hex.startsWith('1f8b') ||
    hex === 'fd377a585a00' ||
    hex.startsWith('28b52ffd') ||
    hex.startsWith('02214c18') ||
    hex.startsWith('04224d18') ||
    hex.startsWith('425a68') ||
    head.subarray(0, 6).toString('latin1') === '070701'
  );
}
