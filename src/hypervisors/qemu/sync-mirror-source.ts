/**
 * The protected VM's end of synchronous replication: its running QEMU mirrors one disk in
 * write-blocking mode to the recovery host's replica daemon (sync-mirror-target.ts) over NBD with
 * TLS-PSK. A guest write completes once the local image and the daemon both have it (QEMU 7.2's
 * `copy-mode: write-blocking`): RPO 0, at the cost of a round trip per write.
 *
 * Everything is named after the disk (`zenith-sync-<disk>`: the job, the NBD node, the
 * credentials object) and lives in QEMU, which outlives the agent: a restarted agent reads it
 * back with `syncMirrorStatus` and takes it down with `stopSyncMirror`.
 *
 * What QEMU 7.2 does when the target goes away (the daemon killed, the connection reset): the
 * guest's write still completes (the mirror reports the target's error and does not fail the
 * guest's write), and the job ends with the error (`on-target-error: report`); with
 * `auto-dismiss: false` it stays, concluded with QEMU's message, until `stopSyncMirror` dismisses
 * it — so a caller that looks later still reads why. A target lost while the guest writes nothing
 * is noticed at its next write: until then the job still says ready.
 *
 * A link that goes silent (no reset) is worse: the guest's write waits for an answer that does not
 * come (7.2's NBD client has no request timeout; TCP retransmits for many minutes), and a
 * `block-job-cancel` then waits for it too, holding QEMU's main loop — the monitor stops
 * answering. The job still says ready, with `inFlightBytes` stuck above 0. `severSyncMirror` cuts
 * the connection in the kernel (`ss -K`): the waiting writes fail on the target side, the mirror
 * ends with an error and the guest's writes go on; `stopSyncMirror` always does that first.
 */
import { connect } from 'node:net';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { systemClock, type Clock } from '../../core/clock.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { QmpBlockJobInfo, QmpClient } from '../../protocols/qmp/index.js';
import type { SyncMirrorStatus } from '../facets/sync-replication.js';
import type { QemuVm } from './qemu-vm.js';
import { writePskDir, type PskCredentials } from './tls-psk.js';

export interface SyncMirrorTarget {
  host: string;
  port: number;
  /** Default `disk0`. */
  exportName?: string;
  psk: PskCredentials;
}

export interface SyncMirrorOptions {
  /** How long the first pass (the whole disk: QEMU 7.2's mirror cannot start from a bitmap) may take. Default 10 minutes. */
  readyTimeoutMs?: number;
  /** How long reaching the target's TCP port may take before QEMU is asked to connect. Default 5 s. */
  connectTimeoutMs?: number;
  clock?: Clock;
}

/** The facet's statuses (facets/sync-replication.ts): what QEMU's job says, in its terms. */
export type { SyncMirrorStatus };

const names = (diskId: string) => ({
  job: `zenith-sync-${diskId}`,
  node: `zenith-sync-nbd-${diskId}`,
  filter: `zenith-sync-top-${diskId}`,
  creds: `zenith-sync-psk-${diskId}`,
});

/** The VM's client-side key directory for this disk's mirror (0700, `keys.psk` 0600). */
const pskDirOf = (vm: QemuVm, diskId: string) => join(vm.dir, `sync-psk-${diskId}`);

function statusOf(job: QmpBlockJobInfo | undefined): SyncMirrorStatus {
  if (!job) return { state: 'none' };
  if (job.error !== undefined) return { state: 'failed', jobId: job.device, error: job.error };
  switch (job.status) {
    case 'concluded':
    case 'null':
      return { state: 'ended', jobId: job.device };
    case 'aborting':
      return { state: 'failed', jobId: job.device, error: 'the mirror is being abandoned' };
    default:
      return job.ready
        ? {
            state: 'ready',
            jobId: job.device,
            totalBytes: job.len,
            inFlightBytes: job.len - job.offset,
          }
        : { state: 'copying', jobId: job.device, copiedBytes: job.offset, totalBytes: job.len };
  }
}

async function jobOf(qmp: QmpClient, diskId: string): Promise<QmpBlockJobInfo | undefined> {
  return (await qmp.execute('query-block-jobs')).find((j) => j.device === names(diskId).job);
}

/** The state of this disk's mirror, as QEMU has it. */
export async function syncMirrorStatus(vm: QemuVm, diskId: string): Promise<SyncMirrorStatus> {
  return statusOf(await jobOf(vm.qmp(), diskId));
}

/** The node QEMU shows for a disk of the VM (`diskN`, the drive's id). */
async function diskNode(vm: QemuVm, qmp: QmpClient, diskId: string): Promise<string> {
  const block = (await qmp.execute('query-block')).find((b) => b.device === diskId);
  const node = block?.inserted?.['node-name'];
  if (!node)
    throw new ZenithError('ZEN_NOT_FOUND', `${vm.record.spec.name} has no disk ${diskId}`, {
      diskId,
    });
  return node;
}

/**
 * Whether the target's port takes a TCP connection within the time: asked before QEMU connects,
 * whose `blockdev-add` waits for its connect (134 s against an address that drops SYNs), its
 * monitor answering nothing else meanwhile.
 */
function reachable(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (problem: string | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(problem);
    };
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(null));
    socket.once('error', (error) => done(error.message));
  });
}

/**
 * Starts mirroring the disk to the target and resolves once the mirror is ready (every write the
 * guest completes from then on is on the replica), with its status. Errors: ZEN_INVALID_STATE (the
 * VM does not run), ZEN_NOT_FOUND (no such disk), ZEN_CONFLICT (a mirror of this disk runs),
 * ZEN_CONNECTION_FAILED (the target cannot be reached or refused the export),
 * ZEN_CONNECTION_AUTH_FAILED (the TLS handshake failed: another key or identity), QMP_JOB_FAILED
 * (the first pass failed), ZEN_TIMEOUT (not ready in time). On any of them nothing of the mirror
 * stays in QEMU, and the guest runs on as before.
 */
export async function startSyncMirror(
  vm: QemuVm,
  diskId: string,
  target: SyncMirrorTarget,
  options: SyncMirrorOptions = {},
): Promise<SyncMirrorStatus> {
  const clock = options.clock ?? systemClock;
  const qmp = vm.qmp();
  const device = await diskNode(vm, qmp, diskId);
  const named = names(diskId);
  const before = statusOf(await jobOf(qmp, diskId));
  if (before.state === 'copying' || before.state === 'ready')
    throw new ZenithError(
      'ZEN_CONFLICT',
      `${diskId} of ${vm.record.spec.name} is mirrored already: stop that mirror first`,
      { diskId, jobId: before.jobId },
    );
  // What an earlier mirror left (it failed, or its agent died while setting it up).
  await stopSyncMirror(vm, diskId, { clock });
  const where = `${target.host}:${target.port}`;
  const unreachable = await reachable(target.host, target.port, options.connectTimeoutMs ?? 5000);
  if (unreachable !== null)
    throw new ZenithError(
      'ZEN_CONNECTION_FAILED',
      `the replica at ${where} cannot be reached: ${unreachable}`,
      { host: target.host, port: target.port, reason: unreachable },
    );
  const pskDir = writePskDir(pskDirOf(vm, diskId), target.psk);
  // Where it goes, for severSyncMirror (after a restart too); the key stays in keys.psk only.
  writeFileSync(
    join(pskDir, 'target.json'),
    `${JSON.stringify({ host: target.host, port: target.port })}\n`,
    { mode: 0o600 },
  );
  try {
    await qmp.execute('object-add', {
      'qom-type': 'tls-creds-psk',
      id: named.creds,
      endpoint: 'client',
      dir: pskDir,
      username: target.psk.identity,
    });
    await addTarget(qmp, named.node, named.creds, target);
    await qmp.execute('blockdev-mirror', {
      'job-id': named.job,
      device,
      target: named.node,
      'filter-node-name': named.filter,
      sync: 'full',
      'copy-mode': 'write-blocking',
      // A target error ends the mirror; the guest's own write has completed (see the top).
      'on-target-error': 'report',
      'on-source-error': 'report',
      // The job stays, concluded with its error, until stopSyncMirror: a later look reads why.
      'auto-dismiss': false,
    });
    // Its first look is query-block-jobs: a BLOCK_JOB_READY sent before it listens is not missed.
    await waitReady(qmp, named.job, options.readyTimeoutMs ?? 10 * 60_000, clock);
    return statusOf(await jobOf(qmp, diskId));
  } catch (error) {
    await stopSyncMirror(vm, diskId, { clock }).catch(() => undefined);
    throw error;
  }
}

/** `blockdev-add` of the NBD client node; QEMU's refusal turned into a coded error. */
async function addTarget(
  qmp: QmpClient,
  node: string,
  creds: string,
  target: SyncMirrorTarget,
): Promise<void> {
  try {
    await qmp.execute('blockdev-add', {
      driver: 'nbd',
      'node-name': node,
      server: { type: 'inet', host: target.host, port: String(target.port) },
      export: target.exportName ?? 'disk0',
      'tls-creds': creds,
    });
  } catch (error) {
    if (!isZenithError(error) || error.code !== 'QMP_COMMAND_FAILED') throw error;
    const desc = typeof error.details.desc === 'string' ? error.details.desc : error.message;
    const where = `${target.host}:${target.port}`;
    // The port answered (reachable() said so): QEMU tells a failed TLS handshake only in words
    // (GenericError), so its description is what separates a wrong key from a missing export.
    if (/TLS/.test(desc))
      throw new ZenithError(
        'ZEN_CONNECTION_AUTH_FAILED',
        `the replica at ${where} refused the key of identity ${target.psk.identity}: ${desc}`,
        { host: target.host, port: target.port, identity: target.psk.identity, qemu: desc },
        { cause: error },
      );
    throw new ZenithError(
      'ZEN_CONNECTION_FAILED',
      `the replica at ${where} refused the connection: ${desc}`,
      { host: target.host, port: target.port, qemu: desc },
      { cause: error },
    );
  }
}

/** Resolves once the job is ready; QMP_JOB_FAILED when it ends first, ZEN_TIMEOUT when it takes too long. */
async function waitReady(
  qmp: QmpClient,
  jobId: string,
  timeoutMs: number,
  clock: Clock,
): Promise<void> {
  let wake: (() => void) | undefined;
  const unsubscribe = [
    qmp.on('BLOCK_JOB_READY', (event) => event.data.device === jobId && wake?.()),
    qmp.on('JOB_STATUS_CHANGE', (event) => event.data.id === jobId && wake?.()),
  ];
  try {
    const deadline = clock.now() + timeoutMs;
    for (;;) {
      const job = (await qmp.execute('query-block-jobs')).find((j) => j.device === jobId);
      const status = statusOf(job);
      if (status.state === 'ready') return;
      if (status.state !== 'copying')
        throw new ZenithError(
          'QMP_JOB_FAILED',
          `the mirror's first pass failed: ${status.state === 'failed' ? status.error : status.state === 'none' ? 'its job is gone' : 'it ended before it was ready'}`,
          { jobId, type: 'mirror', error: status.state === 'failed' ? status.error : null },
        );
      if (clock.now() >= deadline)
        throw new ZenithError('ZEN_TIMEOUT', `the mirror was not ready within ${timeoutMs} ms`, {
          jobId,
          timeoutMs,
          ...(status.state === 'copying'
            ? { copiedBytes: status.copiedBytes, totalBytes: status.totalBytes }
            : {}),
        });
      const timer = new AbortController();
      await new Promise<void>((resolve) => {
        wake = resolve;
        clock.sleep(500, timer.signal).then(resolve, () => undefined);
      });
      timer.abort();
    }
  } finally {
    for (const off of unsubscribe) off();
  }
}

/**
 * Takes the disk's mirror down — the job (cancelled if it runs, dismissed once it ended), the NBD
 * node, the credentials and their key directory — and answers the status it had before: a
 * `failed` mirror says why. Safe to call when there is nothing, or half of it.
 */
export async function stopSyncMirror(
  vm: QemuVm,
  diskId: string,
  options: { clock?: Clock; timeoutMs?: number } = {},
): Promise<SyncMirrorStatus> {
  const clock = options.clock ?? systemClock;
  const qmp = vm.qmp();
  const named = names(diskId);
  const seen = statusOf(await jobOf(qmp, diskId));
  // A cancel waits for the writes in flight, holding QEMU's main loop (its monitor and the guest
  // with it): over a silent link they never come back. Cut the connection first, so they fail.
  if (seen.state === 'ready' || seen.state === 'copying') await severSyncMirror(vm, diskId);
  const deadline = clock.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const job = await jobOf(qmp, diskId);
    if (!job) break;
    if (job.status === 'concluded') {
      await qmp.execute('job-dismiss', { id: named.job });
      continue;
    }
    if (clock.now() >= deadline)
      throw new ZenithError('ZEN_TIMEOUT', `the mirror of ${diskId} did not end when cancelled`, {
        jobId: named.job,
        status: job.status,
      });
    // force: at once, without waiting for the target to catch up (it may be the one that is gone).
    if (job.status !== 'aborting')
      await qmp
        .execute('block-job-cancel', { device: named.job, force: true })
        .catch(() => undefined);
    await clock.sleep(50);
  }
  // QEMU lets go of the node a moment after its job ended.
  for (let attempt = 0; ; attempt++) {
    const nodes = await qmp.execute('query-named-block-nodes', { flat: true });
    if (!nodes.some((n) => n['node-name'] === named.node)) break;
    try {
      await qmp.execute('blockdev-del', { 'node-name': named.node });
      break;
    } catch (error) {
      if (attempt >= 50) throw error;
      await clock.sleep(100);
    }
  }
  await qmp.execute('object-del', { id: named.creds }).catch(() => undefined);
  rmSync(pskDirOf(vm, diskId), { recursive: true, force: true });
  return seen;
}

/**
 * Cuts the mirror's TCP connection to its target (the kernel's socket destroy, `ss -K`): the
 * writes QEMU waits on fail at once, the mirror ends with an error and the guest's writes go on.
 * What to do when a link went silent (a stall: `inFlightBytes` stays above 0), since QEMU 7.2's
 * NBD client has no request timeout and TCP retransmits for many minutes. Answers whether a
 * connection was cut.
 */
export async function severSyncMirror(vm: QemuVm, diskId: string): Promise<boolean> {
  let target: { host: string; port: number };
  try {
    target = JSON.parse(readFileSync(join(pskDirOf(vm, diskId), 'target.json'), 'utf8')) as {
      host: string;
      port: number;
    };
  } catch {
    return false;
  }
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  try {
    const { stdout } = await promisify(execFile)('ss', [
      '-K',
      '-t',
      'dst',
      host,
      'dport',
      '=',
      String(target.port),
    ]);
    return /ESTAB|CLOSE|FIN|SYN/.test(stdout);
  } catch {
    // No ss, or a kernel without socket destroy: the cancel that follows is all there is.
    return false;
  }
}
