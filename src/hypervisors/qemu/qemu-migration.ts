/**
 * Live migration of a QEMU VM between two hosts, one end at a time: the
 * control plane (or a test) calls the destination's `prepareIncoming`, the
 * source's `send`, then the destination's `finishIncoming` and the source's
 * `cleanupOutgoing`. The VM is reported by exactly one host at every moment:
 * the destination hides it until the switch-over, the source hides it from
 * the moment it has left.
 *
 * With shared storage both hosts open the same disk files. A storage
 * migration copies the disks while the guest runs: the destination creates
 * empty disks and serves them over NBD, the source mirrors each disk into
 * them (write-blocking once in sync, so every guest write reaches both), then
 * memory follows.
 *
 * The destination is always started paused (-S) and resumes the guest only in
 * `finishIncoming`, when the control plane says so: until then the source's
 * QEMU, paused after the switch-over, may still take the VM back
 * (`keepOutgoing`), because the guest has run nowhere since. Once the
 * destination resumed it, the destination is the VM.
 *
 * Both ends persist what is under way in the VM's record, so an agent killed
 * in mid-migration settles it after its restart (see `settleAfterRestart`).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { ZenithError } from '../../core/errors.js';
import type { QmpClient } from '../../protocols/qmp/index.js';
import type { ActionContext, MigrateOptions, PowerState } from '../driver.js';
import { reserveImageFile } from './qemu-img.js';
import type { QemuHost } from './qemu-host.js';
import type { QemuVm, VmRecord } from './qemu-vm.js';
import { pathWithinRoots } from '../../core/paths.js';

const run = promisify(execFile);

/** What a destination needs to receive a VM. */
export interface MigrationPackage {
  record: VmRecord;
  /** The VM's power state at the source (a storage migration resumes the guest only if it ran). */
  powerState: PowerState;
  /** Each disk's path relative to the storage root holding it, and its size as the guest sees it. */
  disks: Array<{ relativePath: string; virtualSizeBytes: number }>;
}

export interface IncomingOptions {
  withStorage?: boolean;
  multifdChannels?: number;
}

/** Where the source sends to. */
export interface IncomingEndpoint {
  uri: string;
  /** Storage migration: the destination's NBD server and one export per disk, in disk order. */
  nbd?: { host: string; port: number; exports: string[] };
}

export interface MigrationResult {
  totalTimeMs: number;
  /** As QEMU measured it (the RAM switch-over); a storage migration adds the disk hand-over, measured by the caller. */
  downtimeMs: number | null;
  transferredBytes: number;
  /** Bytes of disk copied by a storage migration (0 with shared storage). */
  diskBytes: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** QEMU's own defaults for a migration's limits (migration/options.c): 128 MiB/s, 300 ms. */
const qemuDefaultBandwidth = 128 * 1024 * 1024;
const qemuDefaultDowntimeMs = 300;

export class QemuMigrations {
  constructor(private readonly host: QemuHost) {}

  /** Source: the package the destination is prepared with. */
  async export(id: string): Promise<MigrationPackage> {
    const vm = this.host.vm(id);
    const disks = [];
    for (const disk of vm.record.spec.disks) {
      const root = this.host.storageRoots.find((r) => {
        try {
          return pathWithinRoots(disk.file, [r]) !== undefined;
        } catch {
          return false;
        }
      });
      const { stdout } = await run('qemu-img', ['info', '-U', '--output=json', disk.file]);
      disks.push({
        relativePath: root ? relative(root, disk.file) : disk.file,
        virtualSizeBytes: (JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'],
      });
    }
    return { record: structuredClone(vm.record), powerState: vm.power, disks };
  }

  /** Destination: a QEMU waiting for the VM (and, for a storage migration, its disks). */
  async prepareIncoming(
    pkg: MigrationPackage,
    listenHost: string,
    options: IncomingOptions,
  ): Promise<IncomingEndpoint> {
    const record = pkg.record;
    if (this.host.find(record.id))
      throw new ZenithError('ZEN_CONFLICT', `VM ${record.id} already exists on this host`);
    // A stopped definition of this very VM (its UUID) is a copy from an earlier stay here (it
    // failed over away): it goes, so that this host never holds two definitions of one VM. One
    // that runs here, or is half of another migration, is refused.
    const uuid = record.spec.uuid;
    if (uuid !== undefined) {
      const { kept } = await this.host.discardMovedAway([uuid]);
      if (kept.length > 0)
        throw new ZenithError(
          'ZEN_CONFLICT',
          `a VM with UUID ${uuid} is on this host already (${kept[0]!.reason})`,
          { uuid },
        );
    }
    const withStorage = options.withStorage === true;
    // Internal snapshots live inside the qcow2 images, and a mirror copies only what the guest sees.
    const snapshots = record.snapshots?.length ?? 0;
    if (withStorage && snapshots > 0)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${record.spec.name} has ${snapshots} snapshot(s), which a storage migration cannot carry: delete them first`,
        { snapshots },
      );
    const root = this.host.storageRoots[0];
    if (withStorage && !root)
      throw new ZenithError('ZEN_CONFIG_INVALID', 'no storage roots are configured for this host');
    if (!withStorage)
      for (const disk of record.spec.disks) {
        try {
          pathWithinRoots(disk.file, this.host.storageRoots);
        } catch {
          throw new ZenithError(
            'ZEN_INVALID_STATE',
            `the disk ${disk.file} is outside this host's storage: migrate with storage`,
            { file: disk.file, storageRoots: this.host.storageRoots },
          );
        }
      }
    const spec = this.host.validate(
      withStorage
        ? {
            ...record.spec,
            // The copies are whole images: a linked clone arrives flattened.
            disks: pkg.disks.map((d) => ({
              file: join(root!, d.relativePath),
              sizeBytes: d.virtualSizeBytes,
            })),
          }
        : record.spec,
    );
    for (const disk of spec.disks) {
      if (withStorage && existsSync(disk.file))
        throw new ZenithError('ZEN_CONFLICT', `the disk ${disk.file} exists already here`, {
          file: disk.file,
        });
      if (!withStorage && !existsSync(disk.file))
        throw new ZenithError(
          'ZEN_INVALID_STATE',
          `this host does not see the disk ${disk.file}: migrate with storage`,
          { file: disk.file },
        );
    }
    // The VM keeps its UUID: shared disks are its own already, new copies become its own.
    const owner = { uuid: record.spec.uuid ?? record.id, name: record.spec.name };
    if (!withStorage)
      for (const disk of spec.disks)
        this.host.claims.claim(disk.file, owner, disk.backingFile ? [disk.backingFile] : []);
    const created: string[] = [];
    const vm = this.host.instance({
      ...record,
      spec,
      desired: 'running',
      incoming: true,
      incomingStorage: withStorage,
      incomingDisks: created,
      sourcePowerState: pkg.powerState,
    });
    vm.incoming = true;
    vm.save();
    try {
      for (const disk of withStorage ? spec.disks : []) {
        mkdirSync(dirname(disk.file), { recursive: true });
        // Listed from the moment the file exists, so that a failed create is removed with the rest.
        reserveImageFile(disk.file);
        created.push(disk.file);
        vm.save();
        await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk.file, String(disk.sizeBytes)]);
        this.host.claims.claim(disk.file, owner);
      }
      // Paused after arrival: the guest resumes at finishIncoming (once a storage migration's disk
      // copies are final), so until then the source may still take it back.
      await vm.start(['-incoming', 'defer', '-S']);
      const qmp = vm.qmp();
      await configure(qmp, options.multifdChannels, false, {});
      let nbd: IncomingEndpoint['nbd'];
      if (withStorage) {
        const port = await freeTcpPort(listenHost);
        await qmp.executeRaw('nbd-server-start', {
          addr: { type: 'inet', data: { host: listenHost, port: String(port) } },
        });
        const exports = spec.disks.map((_, index) => `disk${index}`);
        // Exports name block nodes, not drives: each drive's top node is looked up.
        const nodes = new Map(
          (await qmp.execute('query-block')).map((b) => [b.device, b.inserted?.['node-name']]),
        );
        for (const name of exports) {
          const node = nodes.get(name);
          if (!node)
            throw new ZenithError('ZEN_DRIVER_ERROR', `QEMU has no block node for ${name}`);
          await qmp.executeRaw('block-export-add', {
            type: 'nbd',
            id: `export-${name}`,
            'node-name': node,
            name,
            writable: true,
          });
        }
        nbd = { host: listenHost, port, exports };
      }
      const uri = `tcp:${listenHost}:${await freeTcpPort(listenHost)}`;
      await qmp.execute('migrate-incoming', { uri });
      return { uri, ...(nbd ? { nbd } : {}) };
    } catch (error) {
      await this.abortIncoming(record.id);
      throw error;
    }
  }

  /** Destination: how the reception stands (asked when the source's agent went silent). */
  async incomingState(id: string): Promise<'receiving' | 'received' | 'failed'> {
    const vm = this.host.find(id);
    if (!vm) return 'failed';
    // Finished here (finishIncoming ran): the VM is this host's, whatever its QEMU says now.
    if (!vm.record.incoming) return 'received';
    if (vm.pid === null) return 'failed';
    try {
      const { status } = await vm.qmp().execute('query-status');
      if (status === 'inmigrate') return 'receiving';
      const info = await vm.qmp().execute('query-migrate');
      return info.status === 'failed' ? 'failed' : 'received';
    } catch {
      return 'failed';
    }
  }

  /** Source: a VM still being sent, gone for good, back to normal here, or not known here. */
  async outgoingState(id: string): Promise<'sending' | 'departed' | 'stayed' | 'gone'> {
    const vm = this.host.find(id);
    if (!vm) return 'gone';
    if (vm.departed) return 'departed';
    return vm.outgoing ? 'sending' : 'stayed';
  }

  /** Source: sends the VM (disks first for a storage migration); on any failure the VM stays and runs here. */
  async send(
    id: string,
    incoming: IncomingEndpoint,
    options: MigrateOptions & { multifdChannels?: number },
    context: ActionContext,
  ): Promise<MigrationResult> {
    const vm = this.host.vm(id);
    this.host.expect(vm, ['running', 'suspended', 'paused']);
    const qmp = vm.qmp();
    // Always both: a QEMU keeps the limits of its last migration (one cut short) otherwise.
    await configure(qmp, options.multifdChannels, options.autoConverge === true, {
      'max-bandwidth': options.maxBandwidthBytesPerSecond ?? qemuDefaultBandwidth,
      'downtime-limit': options.maxDowntimeMs ?? qemuDefaultDowntimeMs,
    });
    const nbd = incoming.nbd;
    if (nbd && nbd.exports.length !== vm.record.spec.disks.length)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'the destination offers a different number of disks',
      );
    vm.outgoing = true;
    vm.record.outgoing = { withStorage: nbd !== undefined, powerState: vm.power };
    vm.save();
    const started = performance.now();
    const mirrors = nbd ? vm.record.spec.disks.map((_, index) => `zenith-mirror-${index}`) : [];
    try {
      let diskBytes = 0;
      if (nbd) {
        for (const [index, job] of mirrors.entries())
          await qmp.execute('drive-mirror', {
            'job-id': job,
            device: `disk${index}`,
            target: `nbd://${nbd.host}:${nbd.port}/${nbd.exports[index]}`,
            format: 'raw',
            mode: 'existing',
            sync: 'full',
            'copy-mode': 'write-blocking',
            ...(options.maxBandwidthBytesPerSecond
              ? { speed: options.maxBandwidthBytesPerSecond }
              : {}),
          });
        diskBytes = await this.#mirrorsReady(qmp, mirrors, context);
      }
      const result = await followMigration(qmp, incoming.uri, context, started, nbd !== undefined);
      // The source has paused for good: it is no longer reported here.
      vm.departed = true;
      // Write-blocking mirrors kept the copies identical: ending them is tidying, not a condition of success.
      if (nbd)
        await finishMirrors(qmp, mirrors).catch((error: unknown) =>
          this.host.logger.warn(
            { vm: id, err: (error as Error).message },
            'the disk mirrors did not end cleanly after the switch-over',
          ),
        );
      return { ...result, diskBytes };
    } catch (error) {
      for (const job of mirrors)
        await qmp.execute('block-job-cancel', { device: job, force: true }).catch(() => undefined);
      vm.outgoing = false;
      vm.departed = false;
      delete vm.record.outgoing;
      vm.save();
      await vm.refreshNow();
      throw error;
    }
  }

  /** Waits until every mirror is in sync (copying progress reported); answers the bytes copied. */
  async #mirrorsReady(qmp: QmpClient, jobs: string[], context: ActionContext): Promise<number> {
    for (;;) {
      if (context.signal.aborted)
        throw new ZenithError(
          'ZEN_TASK_CANCELLED',
          'the migration was cancelled while copying disks; the VM stays on its host',
        );
      const running = (await qmp.execute('query-block-jobs')).filter((j) =>
        jobs.includes(j.device),
      );
      const failed = running.find((j) => j['io-status'] !== 'ok' || j.error);
      if (failed || running.length < jobs.length)
        throw new ZenithError(
          'ZEN_DRIVER_ERROR',
          `copying the disks failed: ${failed?.error ?? 'a mirror job ended early'}; the VM stays on its host`,
        );
      const done = running.reduce((sum, j) => sum + j.offset, 0);
      const total = running.reduce((sum, j) => sum + j.len, 0);
      if (running.every((j) => j.ready)) return done;
      context.progress({
        percent: Math.min(49, Math.round((49 * done) / Math.max(1, total))),
        message: 'copying disks',
        details: { diskBytesCopied: done, diskBytesTotal: total },
      });
      await sleep(100);
    }
  }

  /** Destination, after the switch-over: the VM runs here now. */
  async finishIncoming(id: string): Promise<void> {
    const vm = this.host.vm(id);
    const qmp = vm.qmp();
    // The source reports completion as it sends the last bytes; the destination may still be loading them.
    for (let waited = 0; (await qmp.execute('query-status')).status === 'inmigrate'; waited += 20) {
      if (waited > 30_000)
        throw new ZenithError('ZEN_TIMEOUT', 'the destination did not finish loading the VM');
      await sleep(20);
    }
    // Asked again after a cut-off (the control plane settling a migration): the NBD server is gone.
    if (vm.record.incomingStorage) await qmp.executeRaw('nbd-server-stop').catch(() => undefined);
    // Resumed only if it ran at the source, and only the first time (its source state is kept until then).
    const from = vm.record.sourcePowerState;
    const resume = from !== undefined && !['suspended', 'paused'].includes(from);
    // The VM is this host's from here on, written before the guest resumes: a restart of this
    // agent never removes a guest that has run here (and the source never takes it back).
    vm.incoming = false;
    delete vm.record.incoming;
    delete vm.record.incomingStorage;
    delete vm.record.incomingDisks;
    vm.save();
    if (resume && (await qmp.execute('query-status')).status !== 'running')
      await qmp.execute('cont');
    delete vm.record.sourcePowerState;
    vm.save();
    await vm.refreshNow();
  }

  /**
   * Source, after the switch-over, when the destination never resumed the guest (its QEMU was
   * removed first): the VM runs here again, as it was before the migration. Refused while QEMU
   * still sends (its end decides) and when this QEMU has ended.
   */
  async keepOutgoing(id: string): Promise<void> {
    const vm = this.host.vm(id);
    if (!vm.record.outgoing && !vm.departed) return;
    if (!vm.departed)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `the migration of ${vm.record.spec.name} is still sending`,
      );
    if (vm.pid === null)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `the QEMU of ${vm.record.spec.name} ended after the switch-over: it cannot be taken back`,
      );
    const qmp = vm.qmp();
    for (const job of (await qmp.execute('query-block-jobs')).filter((j) =>
      j.device.startsWith('zenith-mirror-'),
    ))
      await qmp.execute('block-job-cancel', { device: job.device, force: true });
    const before = vm.record.outgoing?.powerState ?? 'running';
    // cont re-activates the disks the switch-over handed over.
    if (
      !['suspended', 'paused'].includes(before) &&
      (await qmp.execute('query-status')).status !== 'running'
    )
      await qmp.execute('cont');
    vm.outgoing = false;
    vm.departed = false;
    delete vm.record.outgoing;
    vm.save();
    await vm.refreshNow();
    this.host.logger.warn(
      { vm: id },
      'the VM was taken back after its migration could not finish at the destination',
    );
  }

  /** Source, after the switch-over: ends the old QEMU and forgets the VM (its disks too after a storage migration). */
  async cleanupOutgoing(id: string): Promise<void> {
    const vm = this.host.find(id);
    // Only a VM that is leaving: asked late, the id may be the VM's again (it came back since).
    if (!vm || (!vm.record.outgoing && !vm.departed)) return;
    const removeDisks = vm.record.outgoing?.withStorage === true;
    await vm.quit();
    this.host.forget(vm, removeDisks);
  }

  /** Destination, when a migration failed: removes the half-received VM and the disks made for it. */
  async abortIncoming(id: string): Promise<void> {
    const vm = this.host.find(id);
    if (!vm) return;
    if (!vm.record.incoming)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.record.spec.name} is no longer arriving here: the migration finished on this host`,
      );
    await vm.quit().catch(() => undefined);
    const owner = { uuid: vm.record.spec.uuid ?? vm.record.id };
    for (const file of vm.record.incomingDisks ?? []) {
      rmSync(file, { force: true });
      this.host.claims.release(file, owner);
    }
    this.host.forget(vm, false);
  }

  /**
   * After an agent restart, a VM whose record says a migration was leaving:
   * gone for good (QEMU paused after completing) → ended and forgotten here;
   * still sending → hidden until QEMU says how it ended; failed → reported again.
   * Answers whether the VM stays on this host.
   */
  async settleAfterRestart(vm: QemuVm): Promise<boolean> {
    if (!vm.record.outgoing) return true;
    if (vm.pid === null) {
      // Nobody can tell whether it arrived: the destination reports it if it did.
      this.host.logger.warn(
        { vm: vm.id },
        'the QEMU of a VM that was migrating away ended while the agent was down; leaving it to the destination',
      );
      this.host.forget(vm, false);
      return false;
    }
    const qmp = vm.qmp();
    for (;;) {
      const [{ status }, info] = await Promise.all([
        qmp.execute('query-status'),
        qmp.execute('query-migrate'),
      ]);
      if (status === 'postmigrate' || info.status === 'completed') {
        await this.cleanupOutgoing(vm.id);
        return false;
      }
      if (
        !['setup', 'active', 'pre-switchover', 'device', 'wait-unplug'].includes(info.status ?? '')
      ) {
        for (const job of (await qmp.execute('query-block-jobs')).filter((j) =>
          j.device.startsWith('zenith-mirror-'),
        ))
          await qmp.execute('block-job-cancel', { device: job.device, force: true });
        vm.outgoing = false;
        vm.departed = false;
        delete vm.record.outgoing;
        vm.save();
        await vm.refreshNow();
        return true;
      }
      await sleep(200);
    }
  }
}

async function configure(
  qmp: QmpClient,
  multifdChannels: number | undefined,
  autoConverge: boolean,
  parameters: Record<string, number>,
): Promise<void> {
  const multifd = (multifdChannels ?? 1) > 1;
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [
      { capability: 'events', state: true },
      { capability: 'multifd', state: multifd },
      { capability: 'auto-converge', state: autoConverge },
    ],
  });
  const all = { ...parameters, ...(multifd ? { 'multifd-channels': multifdChannels! } : {}) };
  if (Object.keys(all).length > 0) await qmp.execute('migrate-set-parameters', all);
}

/** Sends memory and waits for the switch-over, reporting each pass; cancels QEMU's migration on abort. */
async function followMigration(
  qmp: QmpClient,
  uri: string,
  context: ActionContext,
  started: number,
  afterDisks: boolean,
): Promise<Omit<MigrationResult, 'diskBytes'>> {
  await qmp.execute('migrate', { uri });
  const base = afterDisks ? 50 : 0;
  for (;;) {
    if (context.signal.aborted) {
      await qmp.execute('migrate_cancel').catch(() => undefined);
      throw new ZenithError(
        'ZEN_TASK_CANCELLED',
        'the migration was cancelled; the VM stays on its host',
      );
    }
    const info = await qmp.execute('query-migrate');
    if (info.status === 'completed') {
      return {
        // QEMU at times reports these as 0 or leaves them out; the wall time seen here is the honest fallback.
        totalTimeMs: Math.round(performance.now() - started),
        downtimeMs: info.downtime ?? null,
        transferredBytes: info.ram?.transferred ?? 0,
      };
    }
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new ZenithError(
        'ZEN_DRIVER_ERROR',
        `the migration ${info.status}: ${info['error-desc'] ?? 'no reason given'}; the VM stays on its host`,
      );
    }
    const ram = info.ram;
    if (ram) {
      const share = ram.transferred / Math.max(1, ram.transferred + ram.remaining);
      context.progress({
        percent: Math.min(99, base + Math.round((99 - base) * share)),
        message: `memory, pass ${ram['dirty-sync-count']}`,
        details: {
          bytesSent: ram.transferred,
          bytesRemaining: ram.remaining,
          dirtyPagesRate: ram['dirty-pages-rate'],
          pass: ram['dirty-sync-count'],
        },
      });
    }
    await sleep(100);
  }
}

/** Source, paused after the switch-over: ends the in-sync mirrors (the copies are complete). */
async function finishMirrors(qmp: QmpClient, jobs: string[]): Promise<void> {
  for (const job of jobs) await qmp.execute('block-job-cancel', { device: job });
  for (let waited = 0; waited < 60_000; waited += 50) {
    const left = (await qmp.execute('query-block-jobs')).filter((j) => jobs.includes(j.device));
    if (left.length === 0) return;
    await sleep(50);
  }
  throw new ZenithError('ZEN_TIMEOUT', 'the disk mirrors did not finish after the switch-over');
}

function freeTcpPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
