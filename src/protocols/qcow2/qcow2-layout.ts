/**
 * A qcow2 image laid out before a byte of its data is known: given the disk's capacity and the
 * byte ranges that will hold data (its extents), the whole image is fixed up front — header, L1
 * table, refcount table and blocks, L2 tables, then the extents' clusters in the guest's order —
 * so it can be streamed front to back with its length known (a download) or written in place with
 * positioned writes (a restore), and ranges without data take no room.
 *
 * The format is QEMU's qcow2 version 3 (docs/interop/qcow2.txt in QEMU's sources): big-endian
 * header, 16-bit refcounts, no snapshots. With a backing file (an overlay: a replica's next point
 * in time), the header names it and its format (the backing-format extension), and the guest reads
 * the backing file wherever the extents hold no data. Every cluster is used
 * once (refcount 1, so L1 and L2 entries carry the COPIED flag). The cluster size is 64 KiB, or the
 * largest power of two dividing every extent's offset and length when that is smaller (an extent
 * that ends the disk may end anywhere), so that an extent is a run of whole clusters. Hand-written
 * because no library writes qcow2 for Node, and QEMU's own tools write only whole files from other
 * images (decision 0036).
 */

const MAGIC = 0x514649fb;
const COPIED = 1n << 63n;
const HEADER_LENGTH = 104;
const REFCOUNT_ORDER = 4; // 16-bit refcounts
const MAX_CLUSTER = 64 * 1024;
const MIN_CLUSTER = 512;
/** The header extension naming the backing file's format. */
const BACKING_FORMAT_EXTENSION = 0xe2792aca;
/** QEMU reads a backing file name of at most 1023 bytes. */
const MAX_BACKING_NAME = 1023;

/** The image an overlay reads through where it holds no data. */
export interface Qcow2Backing {
  /** As written in the header: an absolute path (or one relative to the overlay's directory). */
  file: string;
  format: 'qcow2' | 'raw';
}

/**
 * Where the backing file's name starts in the header cluster: after the header, the backing-format
 * extension (8 bytes of type and length, the format padded to 8) and the end of the extensions (8).
 */
const BACKING_NAME_AT = HEADER_LENGTH + 16 + 8;

/** A byte range of the disk: offset and length. */
export type Extent = readonly [offset: number, length: number];

export class Qcow2LayoutError extends Error {
  readonly code = 'QCOW2_BAD_LAYOUT';
}

interface PlacedExtent {
  /** The guest's byte offset and length. */
  offset: number;
  length: number;
  /** Its first cluster in the image file. */
  hostCluster: number;
}

const ceilDiv = (a: number, b: number) => Math.ceil(a / b);

/** The extents in order, touching ones joined (QCOW2_BAD_LAYOUT for ranges that make no image). */
function normalise(capacity: number, extents: readonly Extent[]): Array<[number, number]> {
  if (!Number.isSafeInteger(capacity) || capacity <= 0)
    throw new Qcow2LayoutError(`a disk of ${capacity} bytes makes no qcow2`);
  const sorted = [...extents].sort((a, b) => a[0] - b[0]);
  const joined: Array<[number, number]> = [];
  for (const [offset, length] of sorted) {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
      throw new Qcow2LayoutError(`extent ${offset}+${length} is not a byte range`);
    if (offset + length > capacity)
      throw new Qcow2LayoutError(`extent ${offset}+${length} ends past the disk (${capacity})`);
    if (length === 0) continue;
    const last = joined.at(-1);
    if (last && offset < last[0] + last[1])
      throw new Qcow2LayoutError(`extent ${offset}+${length} overlaps the one before it`);
    if (last && offset === last[0] + last[1]) last[1] += length;
    else joined.push([offset, length]);
  }
  return joined;
}

/** The largest power of two up to 64 KiB dividing every extent's ends (the disk's end excepted). */
function clusterSizeFor(capacity: number, extents: ReadonlyArray<[number, number]>): number {
  let size = MAX_CLUSTER;
  const fits = (value: number) => value % size === 0;
  for (const [offset, length] of extents)
    while (size > MIN_CLUSTER && !(fits(offset) && (offset + length === capacity || fits(length))))
      size /= 2;
  for (const [offset, length] of extents)
    if (!fits(offset) || (offset + length !== capacity && !fits(length)))
      throw new Qcow2LayoutError(
        `extent ${offset}+${length} is not aligned to ${MIN_CLUSTER} bytes: no qcow2 cluster fits it`,
      );
  return size;
}

export class Qcow2Plan {
  readonly capacity: number;
  readonly clusterSize: number;
  /** Clusters before the data: header, L1, refcount table and blocks, L2 tables. */
  readonly metadataClusters: number;
  readonly dataClusters: number;
  /** Bytes of the whole image. */
  readonly sizeBytes: number;
  readonly backing: Qcow2Backing | undefined;
  readonly #extents: PlacedExtent[];
  readonly #l1Clusters: number;
  readonly #l1Size: number;
  readonly #refcountTableClusters: number;
  readonly #refcountBlocks: number;
  /** The L1 indexes that have an L2 table, in order. */
  readonly #l2Tables: number[];

  private constructor(
    capacity: number,
    extents: ReadonlyArray<[number, number]>,
    backing: Qcow2Backing | undefined,
  ) {
    this.capacity = capacity;
    const c = clusterSizeFor(capacity, extents);
    this.clusterSize = c;
    this.backing = backing;
    if (backing) {
      const name = Buffer.byteLength(backing.file);
      if (name === 0 || name > MAX_BACKING_NAME || BACKING_NAME_AT + name > c)
        throw new Qcow2LayoutError(
          `a backing file name of ${name} bytes does not fit the header (at most ${Math.min(MAX_BACKING_NAME, c - BACKING_NAME_AT)})`,
        );
    }
    const entriesPerL2 = c / 8;
    this.#l1Size = Math.max(1, ceilDiv(capacity, entriesPerL2 * c));
    this.#l1Clusters = ceilDiv(this.#l1Size * 8, c);
    const l2 = new Set<number>();
    this.#extents = [];
    let dataClusters = 0;
    for (const [offset, length] of extents) {
      this.#extents.push({ offset, length, hostCluster: dataClusters });
      const first = offset / c;
      const clusters = ceilDiv(length, c);
      const lastTable = Math.floor((first + clusters - 1) / entriesPerL2);
      for (let table = Math.floor(first / entriesPerL2); table <= lastTable; table++) l2.add(table);
      dataClusters += clusters;
    }
    this.#l2Tables = [...l2].sort((a, b) => a - b);
    // The refcount blocks count every cluster, themselves and the table included: to a fixed point.
    const perBlock = (c * 8) / (1 << REFCOUNT_ORDER);
    let refcountBlocks = 1;
    let refcountTableClusters = 1;
    for (;;) {
      const total =
        1 +
        this.#l1Clusters +
        refcountTableClusters +
        refcountBlocks +
        this.#l2Tables.length +
        dataClusters;
      const blocks = ceilDiv(total, perBlock);
      const tableClusters = ceilDiv(blocks * 8, c);
      if (blocks === refcountBlocks && tableClusters === refcountTableClusters) break;
      refcountBlocks = blocks;
      refcountTableClusters = tableClusters;
    }
    this.#refcountBlocks = refcountBlocks;
    this.#refcountTableClusters = refcountTableClusters;
    this.metadataClusters =
      1 + this.#l1Clusters + refcountTableClusters + refcountBlocks + this.#l2Tables.length;
    this.dataClusters = dataClusters;
    this.sizeBytes = (this.metadataClusters + dataClusters) * c;
    for (const extent of this.#extents) extent.hostCluster += this.metadataClusters;
  }

  /**
   * The layout of a disk of `capacity` bytes whose data lies in `extents` (in any order; touching
   * ones are joined). QCOW2_BAD_LAYOUT for ranges past the disk, overlapping or not aligned to 512.
   */
  static of(capacity: number, extents: readonly Extent[], backing?: Qcow2Backing): Qcow2Plan {
    return new Qcow2Plan(capacity, normalise(capacity, extents), backing);
  }

  /** The data's extents, joined, with where each starts in the image file. */
  get extents(): ReadonlyArray<{ offset: number; length: number; fileOffset: number }> {
    return this.#extents.map((e) => ({
      offset: e.offset,
      length: e.length,
      fileOffset: e.hostCluster * this.clusterSize,
    }));
  }

  /**
   * Where the guest's bytes `offset`..`offset + length` lie in the image file: one piece per
   * extent they cross. QCOW2_BAD_LAYOUT when any of them lies outside the extents.
   */
  fileRanges(
    offset: number,
    length: number,
  ): Array<{ fileOffset: number; length: number; from: number }> {
    const pieces: Array<{ fileOffset: number; length: number; from: number }> = [];
    let at = offset;
    const end = offset + length;
    let index = this.#extentAt(at);
    while (at < end) {
      const extent = index >= 0 ? this.#extents[index] : undefined;
      if (!extent || at < extent.offset || at >= extent.offset + extent.length)
        throw new Qcow2LayoutError(`bytes at ${at} lie outside the image's data extents`);
      const piece = Math.min(end, extent.offset + extent.length) - at;
      pieces.push({
        fileOffset: extent.hostCluster * this.clusterSize + (at - extent.offset),
        length: piece,
        from: at - offset,
      });
      at += piece;
      index++;
    }
    return pieces;
  }

  /** The index of the last extent starting at or before `offset` (-1: none). */
  #extentAt(offset: number): number {
    let low = 0;
    let high = this.#extents.length - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (this.#extents[middle]!.offset <= offset) {
        found = middle;
        low = middle + 1;
      } else high = middle - 1;
    }
    return found;
  }

  /** The image's metadata, front to back: `metadataClusters` clusters, the data's place after them. */
  *metadata(): Generator<Buffer> {
    const c = this.clusterSize;
    const l1At = 1;
    const refcountTableAt = l1At + this.#l1Clusters;
    const refcountBlocksAt = refcountTableAt + this.#refcountTableClusters;
    const l2At = refcountBlocksAt + this.#refcountBlocks;
    const totalClusters = this.metadataClusters + this.dataClusters;

    const header = Buffer.alloc(c);
    header.writeUInt32BE(MAGIC, 0);
    header.writeUInt32BE(3, 4);
    header.writeUInt32BE(Math.log2(c), 20);
    header.writeBigUInt64BE(BigInt(this.capacity), 24);
    header.writeUInt32BE(this.#l1Size, 36);
    header.writeBigUInt64BE(BigInt(l1At * c), 40);
    header.writeBigUInt64BE(BigInt(refcountTableAt * c), 48);
    header.writeUInt32BE(this.#refcountTableClusters, 56);
    header.writeUInt32BE(REFCOUNT_ORDER, 96);
    header.writeUInt32BE(HEADER_LENGTH, 100);
    if (this.backing) {
      // The backing format's extension, the extensions' end (type 0, zeroes), then the file's name.
      header.writeUInt32BE(BACKING_FORMAT_EXTENSION, HEADER_LENGTH);
      header.writeUInt32BE(this.backing.format.length, HEADER_LENGTH + 4);
      header.write(this.backing.format, HEADER_LENGTH + 8, 'latin1');
      const length = header.write(this.backing.file, BACKING_NAME_AT, 'utf8');
      header.writeBigUInt64BE(BigInt(BACKING_NAME_AT), 8);
      header.writeUInt32BE(length, 16);
    }
    // Otherwise the header extensions end at once: their end marker is the zeroes that follow.
    yield header;

    const l1 = Buffer.alloc(this.#l1Clusters * c);
    for (const [j, index] of this.#l2Tables.entries())
      l1.writeBigUInt64BE(BigInt((l2At + j) * c) | COPIED, index * 8);
    yield l1;

    const table = Buffer.alloc(this.#refcountTableClusters * c);
    for (let b = 0; b < this.#refcountBlocks; b++)
      table.writeBigUInt64BE(BigInt((refcountBlocksAt + b) * c), b * 8);
    yield table;

    const perBlock = c / 2;
    for (let b = 0; b < this.#refcountBlocks; b++) {
      const block = Buffer.alloc(c);
      const used = Math.min(perBlock, totalClusters - b * perBlock);
      for (let i = 0; i < used; i++) block.writeUInt16BE(1, i * 2);
      yield block;
    }

    const entriesPerL2 = c / 8;
    let extent = 0;
    for (const index of this.#l2Tables) {
      const l2 = Buffer.alloc(c);
      const firstGuest = index * entriesPerL2;
      // The extents are in the guest's order, and so are the tables: one pass over both.
      while (extent < this.#extents.length) {
        const e = this.#extents[extent]!;
        const from = Math.max(e.offset / c, firstGuest);
        const to = Math.min(e.offset / c + ceilDiv(e.length, c), firstGuest + entriesPerL2);
        for (let guest = from; guest < to; guest++)
          l2.writeBigUInt64BE(
            BigInt((e.hostCluster + guest - e.offset / c) * c) | COPIED,
            (guest - firstGuest) * 8,
          );
        if (e.offset / c + ceilDiv(e.length, c) > firstGuest + entriesPerL2) break; // goes on in the next table
        extent++;
      }
      yield l2;
    }
  }
}
