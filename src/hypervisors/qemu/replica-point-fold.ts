/**
 * Folding a point of a replica's chain into the image under it, inside the replica daemon that
 * holds the chain open (sync-mirror-target.ts): no other process may write an image the daemon
 * has open (QEMU's image locks), so `qemu-img commit` cannot, and QMP `block-commit` does. An
 * intermediate commit (the point is not the live overlay) ends by itself: the image above the
 * point reads through the one under it from then on, and QEMU writes that into its header.
 *
 * Each step is safe to run again after a cut-off: a point whose file is gone, or that is no longer
 * in the chain but still names the image under it, was folded already (its file is removed).
 */
import { closeSync, existsSync, fsyncSync, openSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Clock } from '../../core/clock.js';
import { ZenithError, isZenithError } from '../../core/errors.js';
import {
  awaitJob,
  runJob,
  type QmpBlockDeviceInfo,
  type QmpClient,
} from '../../protocols/qmp/index.js';
import { syncDirectory } from './image-writer.js';
import { backingChain, imageInfo } from './qemu-img.js';

export interface PointFold {
  /** The point to fold (a point of the chain, not the live overlay). */
  overlay: string;
  /** The image directly under it, which takes its data. */
  backing: string;
  /** The node the export serves (the live overlay): the root of the chain. */
  top: { node: string; file: string };
  clock: Clock;
  /** How long the commit may take. */
  timeoutMs: number;
}

/** The format nodes of the chain (not their protocol nodes, nor a job's filters), by file. */
const FORMATS = new Set(['qcow2', 'raw']);

/** A fold's job id: the point's node name (unique in the daemon, the same for a call run again). */
const JOB_PREFIX = 'zenith-fold-';

/** QEMU's refusal to take an image's lock: another process has it open. */
const LOCKED = /Failed to get "[a-z ]+" lock/i;

function fsyncFile(file: string): void {
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A refusal or failure of the commit as the facet's codes: ZEN_DISK_IN_USE for a lock. */
function commitFailure(error: unknown, backing: string): unknown {
  if (!isZenithError(error)) return error;
  const said =
    [error.details.desc, error.details.error].find((v) => typeof v === 'string') ?? error.message;
  if (LOCKED.test(said))
    return new ZenithError(
      'ZEN_DISK_IN_USE',
      `${backing} is held open by another process (a VM reading the chain?): the point is not folded`,
      { file: backing, qemu: said },
      { cause: error },
    );
  if (error.code === 'QMP_COMMAND_FAILED')
    return new ZenithError(
      'ZEN_DRIVER_ERROR',
      `the replica daemon refused to fold the point: ${said}`,
      { file: backing, qemu: said },
      { cause: error },
    );
  if (error.code === 'QMP_TIMEOUT')
    return new ZenithError(
      'ZEN_TIMEOUT',
      `folding the point into ${backing} did not end in time; it goes on in the replica daemon`,
      { file: backing },
      { cause: error },
    );
  return error;
}

async function removeFolded(overlay: string): Promise<void> {
  rmSync(overlay, { force: true });
  await syncDirectory(dirname(overlay));
}

export async function foldPoint(qmp: QmpClient, fold: PointFold): Promise<void> {
  const overlay = resolve(fold.overlay);
  const backing = resolve(fold.backing);
  if (!existsSync(overlay)) return;
  // A fold's job that concluded after its call stopped waiting (or lost its connection) is read
  // no more: its outcome shows in the chain below.
  const jobs = (await qmp.execute('query-jobs')).filter((j) => j.id.startsWith(JOB_PREFIX));
  for (const job of jobs.filter((j) => j.status === 'concluded'))
    await qmp.execute('job-dismiss', { id: job.id });
  const nodes = (await qmp.execute('query-named-block-nodes', {})).filter(
    (n): n is QmpBlockDeviceInfo & { 'node-name': string } =>
      FORMATS.has(n.drv) && n['node-name'] !== undefined,
  );
  const nodeOf = (file: string) => nodes.find((n) => resolve(n.file) === file);
  const under = (node: QmpBlockDeviceInfo) => {
    const file = node.image['backing-image']?.filename;
    return file === undefined ? null : resolve(file);
  };
  const notUnder = () =>
    new ZenithError(
      'ZEN_INVALID_STATE',
      `${backing} is not the image directly under ${overlay} in the replica's chain: nothing is folded`,
      { overlay, backing },
    );
  const backingNode = nodeOf(backing);
  const overlayNode = nodeOf(overlay);
  if (!overlayNode) {
    // Not in the chain: folded already if it still names `backing` (the commit leaves its header).
    const named = (await imageInfo(overlay)).backingFile;
    if (!backingNode || named === null || resolve(dirname(overlay), named) !== backing)
      throw notUnder();
    // An earlier call may have ended between the commit and its fsync.
    fsyncFile(backing);
    await removeFolded(overlay);
    return;
  }
  if (resolve(fold.top.file) === overlay)
    throw new ZenithError(
      'ZEN_INVALID_STATE',
      `${overlay} is the replica's live overlay, not a point: take a point first`,
      { overlay },
    );
  if (!backingNode || under(overlayNode) !== backing) throw notUnder();
  const above = nodes.find((n) => under(n) === overlay);
  if (!above)
    throw new ZenithError(
      'ZEN_DRIVER_ERROR',
      `no image of the replica's chain reads through ${overlay}`,
      { overlay },
    );
  const jobId = `${JOB_PREFIX}${overlayNode['node-name'].replace(/[^A-Za-z0-9_-]/g, '')}`;
  const waiting = { clock: fold.clock, timeoutMs: fold.timeoutMs, pollIntervalMs: 200 };
  try {
    // Run again while the fold an earlier call started goes on: wait for that one.
    if (jobs.some((j) => j.id === jobId && j.status !== 'concluded'))
      await awaitJob(qmp, 'block-commit', jobId, waiting);
    else
      await runJob(
        qmp,
        'block-commit',
        {
          'job-id': jobId,
          device: fold.top.node,
          'top-node': overlayNode['node-name'],
          'base-node': backingNode['node-name'],
          // Concluded jobs stay until read: a failure's error is read, then the job dismissed.
          'auto-dismiss': false,
        },
        waiting,
      );
  } catch (error) {
    throw commitFailure(error, backing);
  }
  // The point's data is in `backing` once on stable storage; only then may its file go.
  fsyncFile(backing);
  fsyncFile(above.file);
  await syncDirectory(dirname(backing));
  const [nowUnder] = await backingChain(resolve(above.file));
  if (nowUnder !== backing)
    throw new ZenithError(
      'ZEN_DRIVER_ERROR',
      `after the fold ${above.file} names ${nowUnder ?? 'no image'} under it, not ${backing}: ${overlay} is kept`,
      { overlay, backing, above: above.file },
    );
  await removeFolded(overlay);
}
