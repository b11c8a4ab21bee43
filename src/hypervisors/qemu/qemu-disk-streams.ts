/**
 * The QEMU driver's disk-stream facet: a VM's disk read over NBD at a point in time, in full or
 * only what changed since a checkpoint, and new images written over NBD.
 *
 * A checkpoint is a persistent dirty bitmap in the qcow2 image, named zenith-…: each read adds a
 * new one at its point in time (the next read's start) and the caller releases the old one once
 * its backup is safe. A stopped VM's disk is served by qemu-nbd (read-only), its bitmaps handled
 * with qemu-img. A running VM's disk is read through QEMU itself, without pausing the guest
 * (QEMU 7.2's incremental backup primitives): one QMP transaction freezes a copy of the old
 * checkpoint (which itself records on), adds the new one and starts a copy-before-write job into a
 * temporary overlay ("fleece") whose backing is the disk, so the overlay shows the disk as it was
 * at that instant while the guest writes on; QEMU's NBD server exports the overlay with the frozen
 * copy. Closing the reader takes all of that down again, and a read finds what a killed process
 * left of one and clears it first. A stopped VM's qemu-nbd serves one client and ends with it, so
 * none outlives a killed reader holding the image's lock. One read per VM at a time.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ZenithError } from '../../core/errors.js';
import type { ActionContext } from '../driver-types.js';
import type {
  DiskCheckpoint,
  DiskReadOptions,
  DiskReader,
  DiskStreamFacet,
  DiskWriter,
  NewDisk,
  OverlayMerge,
  StreamDisk,
} from '../facets/disk-streams.js';
import { checkpointLost } from '../facets/disk-streams.js';
import type { PortableLocation } from '../facets/portable-vm.js';
import { openNbdReader, readImage, ReadsUnderWay, socketPath } from './nbd-disk-stream.js';
import { stagingFile, writeImage } from './image-writer.js';
import { mergeOverlayFiles, overlayBacking } from './overlay-files.js';
import {
  addImageBitmap,
  createImage,
  imageBitmaps,
  imageInfo,
  removeImageBitmap,
} from './qemu-img.js';
import { withGuestFrozen } from './guest-quiesce.js';
import type { QemuHost } from './qemu-host.js';
import type { QemuVm } from './qemu-vm.js';
import { pathWithinRoots } from '../../core/paths.js';

const lost = checkpointLost;

const newCheckpoint = (options: DiskReadOptions) => {
  const tag = options.checkpointTag;
  if (tag !== undefined && !/^[a-z]{1,16}$/.test(tag))
    throw new ZenithError('ZEN_BAD_REQUEST', `a checkpoint tag is 1 to 16 lower-case letters`, {
      field: 'checkpointTag',
    });
  return `zenith-${tag ? `${tag}-` : ''}${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Names this facet gives what it makes in a running QEMU: found again after a kill -9. */
const PREFIX = { node: 'zenith-fleece-', job: 'zenith-backup-', bitmap: 'zenith-point-' } as const;

export class QemuDiskStreams implements DiskStreamFacet {
  /** VMs whose disk is being read by this process: one read at a time (QEMU has one NBD server). */
  readonly #reading = new ReadsUnderWay();

  constructor(private readonly host: QemuHost) {}

  async listDisks(vmExternalId: string): Promise<StreamDisk[]> {
    const vm = this.host.vm(vmExternalId);
    return Promise.all(
      vm.record.spec.disks.map(async (disk, index) => ({
        diskId: `disk${index}`,
        capacityBytes: (await imageInfo(disk.file)).virtualSizeBytes,
        format: 'qcow2' as const,
      })),
    );
  }

  async openReader(
    vmExternalId: string,
    diskId: string,
    options: DiskReadOptions,
    _context: ActionContext,
  ): Promise<DiskReader> {
    const vm = this.host.vm(vmExternalId);
    const file = this.#diskFile(vm, diskId);
    if (vm.incoming || vm.outgoing || vm.departed)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.record.spec.name} is migrating: its disks are read once it has settled`,
      );
    return this.#reading.open(vm.id, vm.record.spec.name, () =>
      vm.pid === null ? this.#readStopped(file, options) : this.#readRunning(vm, diskId, options),
    );
  }

  async openWriter(disk: NewDisk, _context: ActionContext): Promise<DiskWriter> {
    if (disk.format !== 'qcow2')
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `a QEMU host writes qcow2 disks, not ${disk.format}`,
      );
    if (disk.location.datastore !== undefined)
      throw new ZenithError('ZEN_UNSUPPORTED', 'a QEMU host names disks by path, not by datastore');
    // Only inside this host's storage roots, as every disk it makes.
    const file = pathWithinRoots(disk.location.path, this.host.storageRoots);
    const backing = disk.backing
      ? await overlayBacking(this.#path(disk.backing), disk.capacityBytes)
      : null;
    if (disk.replace && existsSync(file)) {
      this.#unused(file, 'replaced');
      rmSync(file, { force: true });
    }
    mkdirSync(dirname(file), { recursive: true });
    return writeImage(file, disk.capacityBytes, {
      replace: disk.replace === true,
      ...(disk.dataExtents ? { dataExtents: disk.dataExtents } : {}),
      ...(backing ? { backing } : {}),
    });
  }

  /** A location on this host: a path inside its storage roots. */
  #path(location: PortableLocation): string {
    if (location.datastore !== undefined)
      throw new ZenithError('ZEN_UNSUPPORTED', 'a QEMU host names disks by path, not by datastore');
    return pathWithinRoots(location.path, this.host.storageRoots);
  }

  async mergeOverlay(merge: OverlayMerge): Promise<void> {
    // No VM of this host may have any of them open (a test failover booted from a point).
    await mergeOverlayFiles(
      {
        overlay: this.#path(merge.overlay),
        backing: this.#path(merge.backing),
        above: merge.above ? this.#path(merge.above) : null,
      },
      (file) => this.#unused(file, 'merged'),
    );
  }

  async removeImages(locations: PortableLocation[]): Promise<void> {
    const files = locations.map((location) => {
      if (location.datastore !== undefined)
        throw new ZenithError(
          'ZEN_UNSUPPORTED',
          'a QEMU host names disks by path, not by datastore',
        );
      return pathWithinRoots(location.path, this.host.storageRoots);
    });
    for (const file of files) this.#unused(file, 'removed', true);
    for (const file of files) {
      // What is left of a claim is that of a VM defined here that uses the file no more.
      const claim = this.host.claims.owner(file);
      if (claim) this.host.claims.release(file, { uuid: claim.vm });
      rmSync(file, { force: true });
      // And what a write of it cut off before it finished left (a writer whose abort never came).
      rmSync(stagingFile(file), { force: true });
    }
    // Their directories go once empty; a storage root itself stays.
    const roots = new Set(this.host.storageRoots.map((root) => resolve(root)));
    for (const directory of new Set(files.map((file) => dirname(file))))
      if (
        !roots.has(resolve(directory)) &&
        existsSync(directory) &&
        readdirSync(directory).length === 0
      )
        rmSync(directory, { recursive: true, force: true });
  }

  /**
   * Refuses a file a VM of this host uses (as its disk or a disk's backing) or claims. With
   * `staleClaims`, a claim of a VM defined here that no longer uses the file (restored over onto
   * new disks) does not count; a claim of a VM not defined here may be a VM on another host that
   * shares the storage, and does.
   */
  #unused(file: string, what: 'replaced' | 'removed' | 'merged', staleClaims = false): void {
    const vms = [...this.host.all()];
    const user = vms.find((vm) =>
      vm.record.spec.disks.some((d) => d.file === file || d.backingFile === file),
    );
    const held = this.host.claims.owner(file);
    const claim =
      held && staleClaims && vms.some((vm) => vm.record.spec.uuid === held.vm) ? null : held;
    // A file some VM's disk reads through (its backing chain), on any host sharing the storage.
    const real = existsSync(file) ? realpathSync(file) : file;
    const backs = this.host.claims
      .all()
      .find((other) => other.backing.includes(real) || other.backing.includes(file));
    if (backs)
      throw new ZenithError(
        'ZEN_DISK_IN_USE',
        `${file} backs a disk of ${backs.name}: it is not ${what}`,
        { file },
      );
    if (user || claim)
      throw new ZenithError(
        'ZEN_DISK_IN_USE',
        `${file} belongs to ${user?.record.spec.name ?? claim?.name ?? 'a VM'}: it is not ${what}`,
        { file },
      );
  }

  async listCheckpoints(vmExternalId: string, diskId: string): Promise<DiskCheckpoint[]> {
    const vm = this.host.vm(vmExternalId);
    const names: string[] =
      vm.pid === null
        ? (await imageBitmaps(this.#diskFile(vm, diskId))).map((bitmap) => bitmap.name)
        : ((await this.#node(vm, diskId)).bitmaps ?? []).flatMap((bitmap) =>
            bitmap.name ? [bitmap.name] : [],
          );
    // Only checkpoints: a read's frozen copies (zenith-point-…) are its own, cleared by it.
    return names
      .filter((name) => name.startsWith('zenith-') && !name.startsWith(PREFIX.bitmap))
      .map((name) => ({ name }));
  }

  async releaseCheckpoint(
    vmExternalId: string,
    diskId: string,
    checkpoint: DiskCheckpoint,
  ): Promise<void> {
    const vm = this.host.vm(vmExternalId);
    const file = this.#diskFile(vm, diskId);
    if (vm.pid === null) {
      if ((await imageBitmaps(file)).some((bitmap) => bitmap.name === checkpoint.name))
        await removeImageBitmap(file, checkpoint.name);
      return;
    }
    const node = await this.#node(vm, diskId);
    if ((node.bitmaps ?? []).some((bitmap) => bitmap.name === checkpoint.name))
      await vm
        .qmp()
        .execute('block-dirty-bitmap-remove', { node: node.name, name: checkpoint.name });
  }

  #diskFile(vm: QemuVm, diskId: string): string {
    const index = /^disk(\d+)$/.exec(diskId)?.[1];
    const disk = index === undefined ? undefined : vm.record.spec.disks[Number(index)];
    if (!disk)
      throw new ZenithError('ZEN_NOT_FOUND', `${vm.record.spec.name} has no disk ${diskId}`, {
        diskId,
      });
    return disk.file;
  }

  async #node(vm: QemuVm, diskId: string) {
    const block = (await vm.qmp().execute('query-block')).find((b) => b.device === diskId);
    const name = block?.inserted?.['node-name'];
    if (!name)
      throw new ZenithError(
        'ZEN_DRIVER_ERROR',
        `QEMU does not show ${diskId} of ${vm.record.spec.name}`,
      );
    return { name, bitmaps: block.inserted?.['dirty-bitmaps'] };
  }

  async #readStopped(file: string, options: DiskReadOptions): Promise<DiskReader> {
    const since = options.changedSince?.name;
    if (since) {
      const bitmap = (await imageBitmaps(file)).find((b) => b.name === since);
      if (!bitmap) throw lost(since, 'the disk has no such bitmap');
      if (bitmap.inUse) throw lost(since, 'its QEMU ended without saving it');
    }
    // Nothing writes the disk of a stopped VM: the new checkpoint starts now, and the read sees this instant.
    const checkpoint = newCheckpoint(options);
    await addImageBitmap(file, checkpoint);
    try {
      return {
        ...(await readImage(file, since ? { changedSince: since } : {})),
        checkpoint: { name: checkpoint },
      };
    } catch (error) {
      await removeImageBitmap(file, checkpoint).catch(() => undefined);
      throw error;
    }
  }

  async #readRunning(vm: QemuVm, diskId: string, options: DiskReadOptions): Promise<DiskReader> {
    const qmp = vm.qmp();
    await this.#clearLeftovers(vm, diskId);
    // Looked up after the clearing: a killed read's copy job had a filter node over the disk's.
    const node = await this.#node(vm, diskId);
    const since = options.changedSince?.name;
    if (since) {
      const bitmap = (node.bitmaps ?? []).find((b) => b.name === since);
      if (!bitmap) throw lost(since, 'the disk has no such bitmap');
      if (bitmap.inconsistent) throw lost(since, 'QEMU found it not saved cleanly');
    }
    const checkpoint = newCheckpoint(options);
    const suffix = randomBytes(4).toString('hex');
    const fleeceNode = `${PREFIX.node}${suffix}`;
    const jobId = `${PREFIX.job}${suffix}`;
    const exportId = `zenith-export-${suffix}`;
    // The export shows a frozen copy of the old checkpoint, never the checkpoint itself: it keeps
    // recording, so a read that fails or a backup that is not kept leaves it exactly as good.
    const point = `${PREFIX.bitmap}${suffix}`;
    const fleeceFile = join(vm.dir, `fleece-${suffix}.qcow2`);
    const socket = socketPath();
    const capacity = (await imageInfo(this.#diskFile(vm, diskId))).virtualSizeBytes;
    const steps: Array<() => Promise<unknown>> = [];
    const teardown = async () => {
      for (const step of steps.reverse()) await step().catch(() => undefined);
      steps.length = 0;
    };
    try {
      await createImage(fleeceFile, { sizeBytes: capacity });
      steps.push(async () => rmSync(fleeceFile, { force: true }));
      await qmp.execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': fleeceNode,
        file: { driver: 'file', filename: fleeceFile },
        backing: node.name,
      });
      steps.push(() => this.#retry(() => qmp.execute('blockdev-del', { 'node-name': fleeceNode })));
      // File systems frozen through the guest agent for the instant of the transaction only.
      const { quiesce } = await withGuestFrozen(vm, this.host, () =>
        qmp.execute('transaction', {
          actions: [
            ...(since
              ? [
                  {
                    type: 'block-dirty-bitmap-add' as const,
                    data: { node: node.name, name: point, persistent: false, disabled: true },
                  },
                  {
                    type: 'block-dirty-bitmap-merge' as const,
                    data: { node: node.name, target: point, bitmaps: [since] },
                  },
                ]
              : []),
            {
              type: 'block-dirty-bitmap-add',
              data: { node: node.name, name: checkpoint, persistent: true },
            },
            {
              type: 'blockdev-backup',
              data: { device: node.name, target: fleeceNode, sync: 'none', 'job-id': jobId },
            },
          ],
        }),
      );
      if (since)
        steps.push(() =>
          qmp.execute('block-dirty-bitmap-remove', { node: node.name, name: point }),
        );
      steps.push(() => qmp.execute('block-job-cancel', { device: jobId, force: true }));
      await qmp.execute('nbd-server-start', { addr: { type: 'unix', data: { path: socket } } });
      steps.push(async () => {
        await qmp.execute('nbd-server-stop');
        rmSync(socket, { force: true });
      });
      await qmp.execute('block-export-add', {
        type: 'nbd',
        id: exportId,
        'node-name': fleeceNode,
        name: 'disk0',
        writable: false,
        ...(since ? { bitmaps: [point] } : {}),
      });
      steps.push(() => qmp.execute('block-export-del', { id: exportId, mode: 'hard' }));
      const reader = await openNbdReader(
        { path: socket },
        { exportName: 'disk0', ...(since ? { changedSince: point } : {}), release: teardown },
      );
      return { ...reader, checkpoint: { name: checkpoint }, quiesce };
    } catch (error) {
      await teardown();
      await qmp
        .execute('block-dirty-bitmap-remove', { node: node.name, name: checkpoint })
        .catch(() => undefined);
      throw error;
    }
  }

  /**
   * What a read of this VM left in its QEMU when the process that made it was killed (no read of
   * it runs here: #reading): the NBD server, the copy job, the overlay node and file, the frozen
   * copy of a checkpoint. A checkpoint it added stays (a later read never starts from it).
   */
  async #clearLeftovers(vm: QemuVm, diskId: string): Promise<void> {
    const qmp = vm.qmp();
    await qmp.execute('nbd-server-stop').catch(() => undefined);
    const ours = async () =>
      (await qmp.execute('query-block-jobs')).filter((job) => job.device.startsWith(PREFIX.job));
    for (const job of await ours())
      await qmp
        .execute('block-job-cancel', { device: job.device, force: true })
        .catch(() => undefined);
    // A cancelled job ends (and takes its filter node off the disk) a moment later.
    for (let waited = 0; (await ours()).length > 0 && waited < 10_000; waited += 50)
      await sleep(50);
    const nodes = (await qmp.executeRaw('query-named-block-nodes')) as Array<{
      'node-name'?: string;
    }>;
    for (const name of new Set(nodes.map((n) => n['node-name'] ?? '')))
      if (name.startsWith(PREFIX.node))
        await this.#retry(() => qmp.execute('blockdev-del', { 'node-name': name })).catch(
          () => undefined,
        );
    const node = await this.#node(vm, diskId);
    for (const bitmap of node.bitmaps ?? [])
      if (bitmap.name?.startsWith(PREFIX.bitmap))
        await qmp
          .execute('block-dirty-bitmap-remove', { node: node.name, name: bitmap.name })
          .catch(() => undefined);
    for (const file of readdirSync(vm.dir))
      if (/^fleece-[0-9a-f]+\.qcow2$/.test(file)) rmSync(join(vm.dir, file), { force: true });
  }

  /** QEMU lets go of a node a moment after its export or job ended: asked again for a few seconds. */
  async #retry(step: () => Promise<unknown>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await step();
        return;
      } catch (error) {
        if (attempt >= 50) throw error;
        await sleep(100);
      }
    }
  }
}
