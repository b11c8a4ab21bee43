/**
 * One disk of a replication cycle: what the source's reader gives (the whole disk on the first
 * cycle, only what changed since the last point after it) written into a new image at the target
 * — a full image, or an overlay of the last point's image holding only what changed. The image is
 * laid out for the extents up front, so their count is bounded: the nearest ones are joined when
 * there are more (the bytes between them are read and written again, unchanged).
 */
import { ZenithError } from '../../core/errors.js';
import {
  MAX_DATA_EXTENTS,
  type ActionContext,
  type DiskReader,
  type DiskStreamFacet,
  type PortableLocation,
} from '../../hypervisors/driver.js';

/** A byte range to copy, and whether it reads as zeroes. */
interface Run {
  offset: number;
  length: number;
  zero: boolean;
}

/** Bytes read and written at a time. */
const PIECE = 1 << 20;

/**
 * A piece that has not crossed in this long means the link to a site stalled (a cut network answers
 * nothing at all): the cycle fails then, rather than when TCP gives up minutes later.
 */
export const STALL_MS = 20_000;

/** The step, or ZEN_TIMEOUT once it has taken `ms`. */
export async function within<T>(ms: number, what: string, step: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      step,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new ZenithError(
                'ZEN_TIMEOUT',
                `${what} did not finish in ${ms / 1000} s: the link stalled`,
              ),
            ),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The runs to copy: for a full read those with data (a new image reads as zeroes elsewhere), for a
 * changed read all of them (an overlay shows its backing image where it holds nothing, so changed
 * zeroes are written too), at most `most` of them.
 */
export function runsToCopy(
  extents: Array<{ offset: number; length: number; zero: boolean }>,
  scope: 'full' | 'changed',
  most = MAX_DATA_EXTENTS,
): Run[] {
  const wanted = extents.filter((e) => e.length > 0 && (scope === 'changed' || !e.zero));
  const runs: Run[] = [];
  for (const extent of wanted) {
    const last = runs.at(-1);
    if (last && last.offset + last.length === extent.offset && last.zero === extent.zero)
      last.length += extent.length;
    else runs.push({ ...extent });
  }
  if (runs.length <= most) return runs;
  // Join across the smallest gaps until few enough remain (a joined run is read, not zeroed).
  const gaps = runs
    .slice(1)
    .map((run, index) => ({
      index,
      size: run.offset - (runs[index]!.offset + runs[index]!.length),
    }))
    .sort((a, b) => a.size - b.size || a.index - b.index)
    .slice(0, runs.length - most);
  const joinAfter = new Set(gaps.map((gap) => gap.index));
  const joined: Run[] = [];
  for (const [index, run] of runs.entries()) {
    const last = joined.at(-1);
    if (last && joinAfter.has(index - 1)) {
      last.length = run.offset + run.length - last.offset;
      last.zero = false;
    } else joined.push({ ...run });
  }
  return joined;
}

export interface CopiedDisk {
  readBytes: number;
  /** The source checkpoint this read made: the next cycle reads what changed since it. */
  checkpoint: string | null;
}

/**
 * Copies what the reader gives into a new image at `target` (an overlay of `backing` when given).
 * The reader is closed either way; a failed copy aborts the writer (nothing of the image stays).
 */
export async function copyDisk(
  reader: DiskReader,
  target: DiskStreamFacet,
  image: { location: PortableLocation; backing: PortableLocation | null },
  context: ActionContext,
  onBytes: (bytes: number) => void,
): Promise<CopiedDisk> {
  try {
    const extents: Array<{ offset: number; length: number; zero: boolean }> = [];
    for await (const extent of reader.extents()) extents.push(extent);
    if (reader.scope === 'changed' && !image.backing)
      throw new ZenithError('ZEN_INTERNAL', 'a changed read is written over the last point only');
    const runs = runsToCopy(extents, reader.scope);
    const opening = target.openWriter(
      {
        location: image.location,
        format: 'qcow2',
        capacityBytes: reader.capacityBytes,
        replace: true,
        dataExtents: runs.map((run) => [run.offset, run.length] as const),
        ...(image.backing ? { backing: image.backing } : {}),
      },
      context,
    );
    const writer = await within(STALL_MS, 'opening the replica', opening).catch(
      (error: unknown) => {
        // Its request may still reach the host once the link is back: that writer is undone then.
        opening.then((late) => late.abort()).catch(() => undefined);
        throw error;
      },
    );
    let readBytes = 0;
    try {
      for (const run of runs) {
        if (run.zero) {
          await within(
            STALL_MS,
            'writing zeroes to the replica',
            writer.writeZeroes(run.offset, run.length),
          );
          onBytes(run.length);
          continue;
        }
        for (let at = run.offset; at < run.offset + run.length; at += PIECE) {
          if (context.signal.aborted)
            throw new ZenithError('ZEN_TASK_CANCELLED', 'the replication cycle was cancelled');
          const length = Math.min(PIECE, run.offset + run.length - at);
          const bytes = await within(STALL_MS, 'reading the disk', reader.read(at, length));
          await within(STALL_MS, 'writing the replica', writer.write(at, bytes));
          readBytes += length;
          onBytes(length);
        }
      }
      await within(STALL_MS * 3, 'finishing the replica', writer.finish());
    } catch (error) {
      // A host cut off aborts it itself when its channel drops; the next cycle removes what is left.
      await within(5000, 'aborting the replica', writer.abort()).catch(() => undefined);
      throw error;
    }
    return { readBytes, checkpoint: reader.checkpoint?.name ?? null };
  } finally {
    await within(5000, 'closing the read', reader.close()).catch(() => undefined);
  }
}
