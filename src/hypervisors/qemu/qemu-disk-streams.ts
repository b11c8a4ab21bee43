/**
 * The QEMU driver's disk-stream facet: a VM's disk read over NBD at a point in time, in full or
 * only what changed since a checkpoint, and new images written over NBD.
 *
 * A checkpoint is a persistent dirty bitmap in the qcow2 image, named zenith-…: each read adds a
 * new one at its point in time (the next read's start) and the caller releases the old one once
 * its backup is safe. A stopped VM's disk is served by qemu-nbd (read-only), its bitmaps handled
 * with qemu-img. A running VM's disk is read through QEMU itself, without pausing the guest
 * (FACTS: QEMU 7.2's incremental backup primitives): one QMP transaction disables the old bitmap,
 * adds the new one and starts a copy-before-write job into a temporary overlay ("fleece") whose
 * backing is the disk, so the overlay shows the disk as it was at that instant while the guest
 * writes on; QEMU's NBD server exports the overlay with the old bitmap. Closing the reader takes
 * all of that down again.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ZenithError } from '../../core/errors.js';
import type { ActionContext } from '../driver-types.js';
import type {
  DiskCheckpoint,
  DiskReadOptions,
  DiskReader,
  DiskStreamFacet,
  DiskWriter,
  NewDisk,
  StreamDisk,
} from '../facets/disk-streams.js';
import { openNbdReader, openNbdWriter } from './nbd-disk-stream.js';
import {
  addImageBitmap,
  createImage,
  imageBitmaps,
  imageInfo,
  removeImageBitmap,
} from './qemu-img.js';
import type { QemuHost } from './qemu-host.js';
import { startQemuNbd } from './qemu-nbd.js';
import type { QemuVm } from './qemu-vm.js';

const lost = (checkpoint: string, why: string) =>
  new ZenithError(
    'ZEN_INVALID_STATE',
    `the checkpoint ${checkpoint} cannot be read from (${why}): read the disk in full`,
    {
      checkpoint: 'lost',
      name: checkpoint,
      why,
    },
  );

const newCheckpoint = () => `zenith-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
/** Unix socket paths are short (108 bytes): these live in the system's temporary directory. */
const socketPath = () => join(tmpdir(), `zenith-nbd-${randomBytes(8).toString('hex')}.sock`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class QemuDiskStreams implements DiskStreamFacet {
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
    return vm.pid === null
      ? this.#readStopped(file, options)
      : this.#readRunning(vm, diskId, options);
  }

  async openWriter(disk: NewDisk, _context: ActionContext): Promise<DiskWriter> {
    if (disk.format !== 'qcow2')
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `a QEMU host writes qcow2 disks, not ${disk.format}`,
      );
    if (disk.location.datastore !== undefined)
      throw new ZenithError('ZEN_UNSUPPORTED', 'a QEMU host names disks by path, not by datastore');
    const file = disk.location.path;
    if (existsSync(file))
      throw new ZenithError('ZEN_CONFLICT', `${file} exists: a restore never overwrites a disk`, {
        file,
      });
    await createImage(file, { sizeBytes: disk.capacityBytes });
    const socket = socketPath();
    let server;
    try {
      server = await startQemuNbd({ image: file, socket });
    } catch (error) {
      rmSync(file, { force: true });
      throw error;
    }
    const stop = async () => {
      await server.stop();
      rmSync(socket, { force: true });
    };
    return openNbdWriter(
      { path: socket },
      {
        exportName: 'disk0',
        complete: async () => {
          await stop();
          return {
            location: { path: file },
            format: 'qcow2',
            bus: 'virtio',
            capacityBytes: disk.capacityBytes,
            owned: true,
          };
        },
        discard: async () => {
          await stop();
          rmSync(file, { force: true });
        },
      },
    );
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
    const checkpoint = newCheckpoint();
    await addImageBitmap(file, checkpoint);
    const socket = socketPath();
    try {
      const server = await startQemuNbd({
        image: file,
        socket,
        readOnly: true,
        ...(since ? { bitmap: since } : {}),
      });
      const reader = await openNbdReader(
        { path: socket },
        {
          exportName: 'disk0',
          ...(since ? { changedSince: since } : {}),
          release: async () => {
            await server.stop();
            rmSync(socket, { force: true });
          },
        },
      ).catch(async (error: unknown) => {
        await server.stop();
        throw error;
      });
      return { ...reader, checkpoint: { name: checkpoint } };
    } catch (error) {
      rmSync(socket, { force: true });
      await removeImageBitmap(file, checkpoint).catch(() => undefined);
      throw error;
    }
  }

  async #readRunning(vm: QemuVm, diskId: string, options: DiskReadOptions): Promise<DiskReader> {
    const qmp = vm.qmp();
    const node = await this.#node(vm, diskId);
    const since = options.changedSince?.name;
    if (since) {
      const bitmap = (node.bitmaps ?? []).find((b) => b.name === since);
      if (!bitmap) throw lost(since, 'the disk has no such bitmap');
      if (bitmap.inconsistent) throw lost(since, 'QEMU found it not saved cleanly');
    }
    const checkpoint = newCheckpoint();
    const suffix = randomBytes(4).toString('hex');
    const fleeceNode = `zenith-fleece-${suffix}`;
    const jobId = `zenith-backup-${suffix}`;
    const exportId = `zenith-export-${suffix}`;
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
      await qmp.execute('transaction', {
        actions: [
          ...(since
            ? [
                {
                  type: 'block-dirty-bitmap-disable' as const,
                  data: { node: node.name, name: since },
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
      });
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
        ...(since ? { bitmaps: [since] } : {}),
      });
      steps.push(() => qmp.execute('block-export-del', { id: exportId, mode: 'hard' }));
      const reader = await openNbdReader(
        { path: socket },
        { exportName: 'disk0', ...(since ? { changedSince: since } : {}), release: teardown },
      );
      return { ...reader, checkpoint: { name: checkpoint } };
    } catch (error) {
      await teardown();
      await qmp
        .execute('block-dirty-bitmap-remove', { node: node.name, name: checkpoint })
        .catch(() => undefined);
      throw error;
    }
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
