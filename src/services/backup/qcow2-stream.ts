/**
 * A backed-up disk as a qcow2 image made as it is sent (a download): since the manifest says which
 * chunks hold data before a byte is read, the whole layout is known up front — header, L1 table,
 * refcount table and blocks, L2 tables, then the data clusters in the guest's order — so the image
 * streams front to back with its length known, and chunks of zeroes take no room in it.
 *
 * The format is QEMU's qcow2 version 3 (docs/interop/qcow2.txt in QEMU's sources): big-endian
 * header, 16-bit refcounts, no backing file, no snapshots, no extensions. Every cluster written is
 * used once (refcount 1, so L1 and L2 entries carry the COPIED flag). The cluster size is 64 KiB,
 * or the largest power of two dividing the repository's chunk size when that is smaller, so that a
 * chunk is a whole number of clusters. Hand-written because no library writes qcow2 for Node, and
 * QEMU's own tools write only into files (decision 0036).
 */
import { ZenithError } from '../../core/errors.js';
import { sentChunk } from './disk-backup.js';
import type { ManifestDisk } from './repository/manifest.js';
import type { BackupRepository } from './repository/repository.js';

const MAGIC = 0x514649fb;
const COPIED = 1n << 63n;
const HEADER_LENGTH = 104;
const REFCOUNT_ORDER = 4; // 16-bit refcounts

export interface Qcow2Layout {
  clusterSize: number;
  /** Bytes of the whole image. */
  sizeBytes: number;
  /** Clusters before the data: header, L1, refcount table and blocks, L2 tables. */
  metadataClusters: number;
}

interface Plan extends Qcow2Layout {
  capacity: number;
  chunkSize: number;
  chunks: Array<string | null>;
  l1Size: number;
  l1Clusters: number;
  refcountTableClusters: number;
  refcountBlocks: number;
  /** The L1 indexes that have an L2 table, in order. */
  l2Tables: number[];
  dataClusters: number;
  /** Per chunk: the index of its first data cluster among the data clusters (-1: not stored). */
  firstDataCluster: number[];
}

const ceilDiv = (a: number, b: number) => Math.ceil(a / b);

function plan(capacity: number, chunkSize: number, chunks: Array<string | null>): Plan {
  let clusterSize = 64 * 1024;
  while (chunkSize % clusterSize !== 0) clusterSize /= 2;
  if (clusterSize < 512)
    throw new ZenithError('ZEN_UNSUPPORTED', `a chunk size of ${chunkSize} bytes makes no qcow2`);
  const entriesPerL2 = clusterSize / 8;
  const clustersPerChunk = chunkSize / clusterSize;
  const l1Size = Math.max(1, ceilDiv(capacity, entriesPerL2 * clusterSize));
  const l1Clusters = ceilDiv(l1Size * 8, clusterSize);
  const firstDataCluster: number[] = [];
  const l2 = new Set<number>();
  let dataClusters = 0;
  for (const [index, name] of chunks.entries()) {
    if (name === null) {
      firstDataCluster.push(-1);
      continue;
    }
    firstDataCluster.push(dataClusters);
    const length = Math.min(chunkSize, capacity - index * chunkSize);
    const clusters = ceilDiv(length, clusterSize);
    const firstGuest = index * clustersPerChunk;
    const lastTable = Math.floor((firstGuest + clusters - 1) / entriesPerL2);
    for (let table = Math.floor(firstGuest / entriesPerL2); table <= lastTable; table++)
      l2.add(table);
    dataClusters += clusters;
  }
  const l2Tables = [...l2].sort((a, b) => a - b);
  // The refcount blocks count every cluster, themselves and the table included: to a fixed point.
  const perBlock = (clusterSize * 8) / (1 << REFCOUNT_ORDER);
  let refcountBlocks = 1;
  let refcountTableClusters = 1;
  for (;;) {
    const total =
      1 + l1Clusters + refcountTableClusters + refcountBlocks + l2Tables.length + dataClusters;
    const blocks = ceilDiv(total, perBlock);
    const tableClusters = ceilDiv(blocks * 8, clusterSize);
    if (blocks === refcountBlocks && tableClusters === refcountTableClusters) break;
    refcountBlocks = blocks;
    refcountTableClusters = tableClusters;
  }
  const metadataClusters =
    1 + l1Clusters + refcountTableClusters + refcountBlocks + l2Tables.length;
  return {
    clusterSize,
    sizeBytes: (metadataClusters + dataClusters) * clusterSize,
    metadataClusters,
    capacity,
    chunkSize,
    chunks,
    l1Size,
    l1Clusters,
    refcountTableClusters,
    refcountBlocks,
    l2Tables,
    dataClusters,
    firstDataCluster,
  };
}

/** The image's layout for a backed-up disk (its size, before a byte is read). */
export function qcow2Layout(disk: ManifestDisk, chunkSize: number): Qcow2Layout {
  const { clusterSize, sizeBytes, metadataClusters } = plan(
    disk.capacityBytes,
    chunkSize,
    disk.chunks,
  );
  return { clusterSize, sizeBytes, metadataClusters };
}

function* metadata(p: Plan): Generator<Buffer> {
  const c = p.clusterSize;
  const l1At = 1;
  const refcountTableAt = l1At + p.l1Clusters;
  const refcountBlocksAt = refcountTableAt + p.refcountTableClusters;
  const l2At = refcountBlocksAt + p.refcountBlocks;
  const dataAt = l2At + p.l2Tables.length;
  const totalClusters = dataAt + p.dataClusters;

  const header = Buffer.alloc(c);
  header.writeUInt32BE(MAGIC, 0);
  header.writeUInt32BE(3, 4);
  header.writeUInt32BE(Math.log2(c), 20);
  header.writeBigUInt64BE(BigInt(p.capacity), 24);
  header.writeUInt32BE(p.l1Size, 36);
  header.writeBigUInt64BE(BigInt(l1At * c), 40);
  header.writeBigUInt64BE(BigInt(refcountTableAt * c), 48);
  header.writeUInt32BE(p.refcountTableClusters, 56);
  header.writeUInt32BE(REFCOUNT_ORDER, 96);
  header.writeUInt32BE(HEADER_LENGTH, 100);
  // The header extensions end at once: their end marker is the zeroes that follow.
  yield header;

  const l1 = Buffer.alloc(p.l1Clusters * c);
  for (const [j, index] of p.l2Tables.entries())
    l1.writeBigUInt64BE(BigInt((l2At + j) * c) | COPIED, index * 8);
  yield l1;

  const table = Buffer.alloc(p.refcountTableClusters * c);
  for (let b = 0; b < p.refcountBlocks; b++)
    table.writeBigUInt64BE(BigInt((refcountBlocksAt + b) * c), b * 8);
  yield table;

  const perBlock = c / 2;
  for (let b = 0; b < p.refcountBlocks; b++) {
    const block = Buffer.alloc(c);
    const used = Math.min(perBlock, totalClusters - b * perBlock);
    for (let i = 0; i < used; i++) block.writeUInt16BE(1, i * 2);
    yield block;
  }

  const entriesPerL2 = c / 8;
  const clustersPerChunk = p.chunkSize / c;
  for (const index of p.l2Tables) {
    const table = Buffer.alloc(c);
    for (let e = 0; e < entriesPerL2; e++) {
      const guest = index * entriesPerL2 + e;
      if (guest * c >= p.capacity) break;
      const chunk = Math.floor(guest / clustersPerChunk);
      const first = p.firstDataCluster[chunk];
      if (first === undefined || first < 0) continue;
      const host = dataAt + first + (guest - chunk * clustersPerChunk);
      table.writeBigUInt64BE(BigInt(host * c) | COPIED, e * 8);
    }
    yield table;
  }
}

/**
 * The image's bytes, front to back: the metadata, then each stored chunk read back and checked
 * (padded to whole clusters at the disk's end). A damaged chunk ends the sequence with
 * ZEN_BACKUP_CHUNK_DAMAGED after `damaged`: the reader gets fewer bytes than the layout said.
 */
export async function* qcow2Bytes(
  repository: BackupRepository,
  disk: ManifestDisk,
  damaged: (error: ZenithError) => Promise<void>,
): AsyncGenerator<Buffer> {
  const chunkSize = repository.config.chunkSize;
  const p = plan(disk.capacityBytes, chunkSize, disk.chunks);
  yield* metadata(p);
  for (const [index, name] of disk.chunks.entries()) {
    if (name === null) continue;
    const length = Math.min(chunkSize, disk.capacityBytes - index * chunkSize);
    yield await sentChunk(repository, name, length, damaged);
    const padding = ceilDiv(length, p.clusterSize) * p.clusterSize - length;
    if (padding > 0) yield Buffer.alloc(padding);
  }
}
