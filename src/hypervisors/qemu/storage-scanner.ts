/**
 * Finds the images in a set of storage roots by reading headers only: 4 KiB of each file (and 256
 * bytes at 32 KiB, where an ISO keeps its volume descriptor), a few files at a time. Bounded in
 * every direction so a hostile or broken root cannot hang or exhaust the scan: directories are
 * never entered through links, links to files are followed only when their target is inside the
 * roots, depth and file count are capped, and a root that cannot be read is a coded error beside
 * the others' results.
 */
import { lstat, open, opendir, realpath, stat } from 'node:fs/promises';
import { constants, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import {
  headBytes,
  isoDescriptorBytes,
  isoDescriptorOffset,
  kindOfFormat,
  needsIsoDescriptor,
  readImageHeader,
  backingName,
} from '../../protocols/disk-images/image-header.js';
import type { ActionContext } from '../driver-types.js';
import type { ScanSkips, ScannedImage, ScannedRoot, StorageScan } from '../facets/storage-scan.js';
import { claimsDirName } from './disk-claims.js';

export interface ScanLimits {
  /** Directory levels below a root the scan enters. */
  maxDepth: number;
  /** Files looked at across all roots; beyond, the scan stops and says it was truncated. */
  maxFiles: number;
  /** Header reads in flight at once. */
  concurrency: number;
}

export const defaultScanLimits: ScanLimits = { maxDepth: 8, maxFiles: 100_000, concurrency: 16 };

interface Candidate {
  path: string;
  root: string;
  /** The file read: the link's target for a link. */
  target: string;
  linkTarget: string | null;
  stats: Stats;
}

export async function scanStorageRoots(
  roots: string[],
  options: {
    clock: Clock;
    context: ActionContext;
    owners: (file: string) => { vmUuid: string; vmName: string } | null;
    limits?: Partial<ScanLimits>;
  },
): Promise<Omit<StorageScan, 'definedVmUuids'>> {
  const limits = { ...defaultScanLimits, ...options.limits };
  const startedAt = options.clock.now();
  const skipped: ScanSkips = {
    linksOutside: 0,
    brokenLinks: 0,
    tooDeep: 0,
    unreadable: 0,
    notImages: 0,
  };
  const scannedRoots: ScannedRoot[] = [];
  const realRoots: string[] = [];
  for (const root of roots) {
    try {
      const real = await realpath(root);
      if (!(await stat(real)).isDirectory())
        throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      realRoots.push(real);
      scannedRoots.push({ root, error: null });
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      scannedRoots.push({
        root,
        error: {
          code: 'ZEN_STORAGE_ROOT_UNREADABLE',
          message: `the storage root ${root} cannot be scanned (${reason})`,
        },
      });
    }
  }
  const inRoots = (real: string) =>
    realRoots.some((root) => {
      const inside = relative(root, real);
      return (
        inside === '' || (!inside.startsWith(`..${sep}`) && inside !== '..' && !isAbsolute(inside))
      );
    });

  const candidates: Candidate[] = [];
  let truncated = false;
  const seenDirs = new Set<string>();
  const walk = async (dir: string, root: string, depth: number): Promise<void> => {
    options.context.signal.throwIfAborted();
    let handle;
    try {
      handle = await opendir(dir, { bufferSize: 256 });
    } catch {
      skipped.unreadable += 1;
      return;
    }
    const subdirs: string[] = [];
    for await (const entry of handle) {
      if (candidates.length >= limits.maxFiles) {
        truncated = true;
        break;
      }
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (depth === 0 && entry.name === claimsDirName) continue;
        subdirs.push(path);
      } else if (entry.isFile()) {
        const stats = await lstat(path).catch(() => null);
        if (!stats) skipped.unreadable += 1;
        else candidates.push({ path, root, target: path, linkTarget: null, stats });
      } else if (entry.isSymbolicLink()) {
        await followLink(path, root);
      }
    }
    for (const sub of subdirs) {
      if (depth + 1 > limits.maxDepth) {
        skipped.tooDeep += 1;
        continue;
      }
      // A directory reached twice (a bind mount of a parent) is walked once.
      const key = await stat(sub)
        .then((s) => `${s.dev}:${s.ino}`)
        .catch(() => null);
      if (key === null) {
        skipped.unreadable += 1;
        continue;
      }
      if (seenDirs.has(key)) continue;
      seenDirs.add(key);
      await walk(sub, root, depth + 1);
      if (truncated) return;
    }
  };
  // A link is followed to a file inside the roots only; never into a directory (no loops to walk).
  const followLink = async (path: string, root: string): Promise<void> => {
    let target: string;
    try {
      target = await realpath(path);
    } catch {
      skipped.brokenLinks += 1;
      return;
    }
    if (!inRoots(target)) {
      skipped.linksOutside += 1;
      return;
    }
    const stats = await stat(target).catch(() => null);
    if (!stats) skipped.brokenLinks += 1;
    else if (stats.isFile()) candidates.push({ path, root, target, linkTarget: target, stats });
  };
  for (const [index, real] of realRoots.entries()) {
    const root = scannedRoots.filter((r) => r.error === null)[index]!.root;
    const key = await stat(real).then((s) => `${s.dev}:${s.ino}`);
    if (seenDirs.has(key)) continue;
    seenDirs.add(key);
    await walk(real, root, 0);
    if (truncated) break;
  }

  const images: ScannedImage[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < candidates.length) {
      options.context.signal.throwIfAborted();
      const candidate = candidates[next++]!;
      const image = await readCandidate(candidate, options.owners).catch(() => undefined);
      if (image === undefined) skipped.unreadable += 1;
      else if (image === null) skipped.notImages += 1;
      else images.push(image);
      done += 1;
      if (done % 500 === 0)
        options.context.progress({
          percent: Math.floor((done / candidates.length) * 100),
          message: `${done} of ${candidates.length} files read`,
        });
    }
  };
  await Promise.all(Array.from({ length: limits.concurrency }, worker));
  images.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    startedAt,
    finishedAt: options.clock.now(),
    roots: scannedRoots,
    images,
    skipped,
    truncated,
  };
}

async function readCandidate(
  candidate: Candidate,
  owners: (file: string) => { vmUuid: string; vmName: string } | null,
): Promise<ScannedImage | null> {
  const { stats } = candidate;
  // A file swapped since it was listed — for a FIFO (which would block the read) or for a link
  // (which could lead out of the roots) — is not read: non-blocking, no link followed.
  const file = await open(
    candidate.target,
    constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW,
  );
  try {
    const head = Buffer.alloc(Math.min(headBytes, stats.size));
    await file.read(head, 0, head.length, 0);
    let isoDescriptor: Buffer | null = null;
    if (needsIsoDescriptor(stats.size)) {
      isoDescriptor = Buffer.alloc(isoDescriptorBytes);
      await file.read(isoDescriptor, 0, isoDescriptorBytes, isoDescriptorOffset);
    }
    const header = readImageHeader({
      name: basename(candidate.path),
      fileBytes: stats.size,
      head,
      isoDescriptor,
    });
    if (!header) return null;
    let backing = header.backingFile;
    if (header.backingAt) {
      const bytes = Buffer.alloc(header.backingAt.length);
      await file.read(bytes, 0, bytes.length, header.backingAt.offset);
      backing = backingName(bytes);
    }
    return {
      path: candidate.path,
      root: candidate.root,
      format: header.format,
      kind: kindOfFormat[header.format],
      virtualBytes: header.virtualBytes,
      fileBytes: stats.size,
      allocatedBytes: stats.blocks * 512,
      // A relative backing name is relative to the image's own directory (as QEMU reads it).
      backingFile:
        backing === null
          ? null
          : isAbsolute(backing)
            ? backing
            : resolve(dirname(candidate.target), backing),
      label: header.label,
      problem: header.problem,
      linkTarget: candidate.linkTarget,
      modifiedAt: Math.floor(stats.mtimeMs),
      owner: owners(candidate.target),
    };
  } finally {
    await file.close();
  }
}

/** A scan in which every root failed is no scan: its first root's error, thrown. */
export function requireSomeRoot(scan: { roots: ScannedRoot[] }): void {
  const failed = scan.roots.filter((root) => root.error !== null);
  if (failed.length > 0 && failed.length === scan.roots.length)
    throw new ZenithError('ZEN_STORAGE_ROOT_UNREADABLE', failed[0]!.error!.message, {
      roots: failed.map((r) => ({ root: r.root, message: r.error!.message })),
    });
}
