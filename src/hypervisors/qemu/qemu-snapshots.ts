/**
 * Snapshots of QEMU VMs, as qcow2 internal snapshots in every disk of the VM.
 *
 * - A VM whose QEMU runs (running, suspended, paused) is snapshotted through
 *   QMP jobs (`snapshot-save`/`-load`/`-delete`): the guest's memory and
 *   device state go into the first disk, so reverting brings back the
 *   running guest at that moment.
 * - A stopped VM is snapshotted with `qemu-img snapshot`: disks only.
 *
 * The tag inside the images is the snapshot's id; names are Zenith's. The
 * list (id, name, time, power state) is kept in the VM's record (vm.json), so
 * it survives restarts of the agent or control plane and travels with a
 * live migration.
 *
 * Reverting returns the VM to the power state of the snapshot: a snapshot
 * taken while the VM ran is restored into a running guest (QEMU is started
 * paused first when the VM is stopped), one taken while it was stopped
 * powers the VM off and restores its disks.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import { runJob } from '../../protocols/qmp/index.js';
import type { ActionContext, SnapshotInfo } from '../driver.js';
import { imageInfo, snapshotImage } from './qemu-img.js';
import type { QemuVm, SnapshotRecord } from './qemu-vm.js';

const snapshotName = /^[a-zA-Z0-9][a-zA-Z0-9 ._:-]{0,63}$/;

export class QemuSnapshots {
  constructor(private readonly clock: Clock) {}

  list(vm: QemuVm): SnapshotInfo[] {
    return this.#catalog(vm).map(({ id, name, createdAt, powerState }) => ({
      id,
      name,
      createdAt,
      powerState,
    }));
  }

  count(vm: QemuVm): number {
    return this.#catalog(vm).length;
  }

  async create(vm: QemuVm, name: string, context: ActionContext): Promise<SnapshotInfo> {
    if (!snapshotName.test(name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${name}' is not a valid snapshot name (letters, digits, space and . _ : -, at most 64)`,
        { name },
      );
    const spec = vm.record.spec;
    if (this.#catalog(vm).some((s) => s.name === name))
      throw new ZenithError('ZEN_CONFLICT', `${spec.name} already has a snapshot named '${name}'`, {
        name,
      });
    await requireQcow2Disks(vm);
    const takenAt = this.clock.now();
    const id = `s${newId('vm', takenAt).slice('vm_'.length)}`;
    const power = vm.power;
    context.progress({
      percent: 10,
      message: power === 'stopped' ? 'snapshotting the disks' : 'saving memory and disks',
    });
    if (power === 'stopped') {
      const done: string[] = [];
      try {
        for (const disk of spec.disks) {
          await snapshotImage('create', id, disk.file);
          done.push(disk.file);
        }
      } catch (error) {
        // All disks or none: a snapshot of some disks only could not be reverted.
        for (const file of done) await snapshotImage('delete', id, file).catch(() => undefined);
        throw error;
      }
    } else {
      await quietly(vm, async () => {
        const nodes = await nodeNames(vm);
        await runJob(
          vm.qmp(),
          'snapshot-save',
          { 'job-id': `save-${id}`, tag: id, vmstate: nodes[0]!, devices: nodes },
          { clock: this.clock },
        );
      });
    }
    const record: SnapshotRecord = {
      id,
      name,
      createdAt: takenAt,
      // A paused guest comes back paused: Zenith calls that suspended.
      powerState: power === 'stopped' || power === 'running' ? power : 'suspended',
      withMemory: power !== 'stopped',
    };
    this.#save(vm, [...this.#catalog(vm), record]);
    return this.list(vm).find((s) => s.id === id)!;
  }

  async revert(vm: QemuVm, idOrName: string, context: ActionContext): Promise<void> {
    const snapshot = this.#find(vm, idOrName);
    await requireQcow2Disks(vm);
    await this.#requireOnEveryDisk(vm, snapshot);
    if (!snapshot.withMemory) {
      // Taken while stopped: the VM returns to stopped, with its disks as they were.
      context.progress({ percent: 10, message: 'powering off' });
      if (vm.power !== 'stopped') await vm.quit();
      context.progress({ percent: 50, message: 'restoring the disks' });
      for (const disk of vm.record.spec.disks) await snapshotImage('apply', snapshot.id, disk.file);
      return;
    }
    await quietly(vm, async () => {
      let startedHere = false;
      if (vm.power === 'stopped') {
        // The guest's state needs a QEMU to load into: start one paused (-S), load, then let it run.
        context.progress({ percent: 10, message: 'starting QEMU paused' });
        await vm.start(['-S']);
        startedHere = true;
      }
      try {
        const qmp = vm.qmp();
        context.progress({ percent: 30, message: 'loading memory and disks' });
        if (snapshot.powerState !== 'running' && vm.power === 'running') {
          // Pause first, or QEMU would resume the guest after loading (and run it for a moment).
          const stopped = qmp.waitForEvent('STOP');
          await qmp.execute('stop');
          await stopped;
        }
        const nodes = await nodeNames(vm);
        await runJob(
          qmp,
          'snapshot-load',
          {
            'job-id': `load-${snapshot.id}-${this.clock.now()}`,
            tag: snapshot.id,
            vmstate: nodes[0]!,
            devices: nodes,
          },
          { clock: this.clock },
        );
        if (
          snapshot.powerState === 'running' &&
          (await qmp.execute('query-status')).status !== 'running'
        )
          await qmp.execute('cont');
      } catch (error) {
        // A QEMU started only for this load goes again: the VM stays stopped, as it was.
        if (startedHere) await vm.quit().catch(() => undefined);
        throw error;
      }
    });
  }

  async remove(vm: QemuVm, idOrName: string, context: ActionContext): Promise<void> {
    const snapshot = this.#find(vm, idOrName);
    context.progress({ percent: 10, message: 'deleting the snapshot from the disks' });
    if (vm.power === 'stopped') {
      // Disks that no longer hold the tag are skipped: a delete cut off half-way can be repeated.
      for (const disk of vm.record.spec.disks)
        if ((await imageInfo(disk.file)).snapshots.some((s) => s.tag === snapshot.id))
          await snapshotImage('delete', snapshot.id, disk.file);
    } else {
      await quietly(vm, async () =>
        runJob(
          vm.qmp(),
          'snapshot-delete',
          {
            'job-id': `delete-${snapshot.id}-${this.clock.now()}`,
            tag: snapshot.id,
            devices: await nodeNames(vm),
          },
          { clock: this.clock },
        ),
      );
    }
    this.#save(
      vm,
      this.#catalog(vm).filter((s) => s.id !== snapshot.id),
    );
  }

  #find(vm: QemuVm, idOrName: string): SnapshotRecord {
    const found = this.#catalog(vm).find((s) => s.id === idOrName || s.name === idOrName);
    if (!found)
      throw new ZenithError(
        'ZEN_NOT_FOUND',
        `${vm.record.spec.name} has no snapshot '${idOrName}'`,
        { snapshot: idOrName },
      );
    return found;
  }

  /** The list says the snapshot exists; the disks must agree before anything is changed. */
  async #requireOnEveryDisk(vm: QemuVm, snapshot: SnapshotRecord): Promise<void> {
    const spec = vm.record.spec;
    const tagsPerDisk =
      vm.power === 'stopped'
        ? await Promise.all(
            spec.disks.map(async (d) => (await imageInfo(d.file)).snapshots.map((s) => s.tag)),
          )
        : await (async () => {
            const blocks = await vm.qmp().execute('query-block');
            return spec.disks.map((_d, index) =>
              (
                blocks.find((b) => b.device === `disk${index}`)?.inserted?.image.snapshots ?? []
              ).map((s) => s.name),
            );
          })();
    const lacking = spec.disks.filter((_d, index) => !tagsPerDisk[index]?.includes(snapshot.id));
    if (lacking.length > 0)
      throw new ZenithError(
        'ZEN_NOT_FOUND',
        `the snapshot '${snapshot.name}' of ${spec.name} is missing from ${lacking.map((d) => d.file).join(', ')}; it cannot be reverted`,
        { snapshot: snapshot.id, disks: lacking.map((d) => d.file) },
      );
  }

  #catalog(vm: QemuVm): SnapshotRecord[] {
    return vm.record.snapshots ?? [];
  }

  #save(vm: QemuVm, catalog: SnapshotRecord[]): void {
    vm.record.snapshots = catalog;
    vm.save();
  }
}

/**
 * Snapshot work on a live VM pauses the guest for a moment: that passing state
 * is not reported, only the state afterwards (or after a failure).
 */
async function quietly(vm: QemuVm, work: () => Promise<unknown>): Promise<void> {
  vm.snapshotting = true;
  try {
    await work();
  } finally {
    vm.snapshotting = false;
    await vm.refreshNow();
  }
}

/** Internal snapshots need qcow2 images, and at least one to hold the guest's state. */
async function requireQcow2Disks(vm: QemuVm): Promise<void> {
  const spec = vm.record.spec;
  if (spec.disks.length === 0)
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      `${spec.name} has no disk: QEMU keeps snapshots inside qcow2 disks; add a disk to snapshot this VM`,
      { capability: 'vm.snapshot' },
    );
  for (const disk of spec.disks) {
    const { format } = await imageInfo(disk.file);
    if (format !== 'qcow2')
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `the disk ${disk.file} of ${spec.name} is ${format}, not qcow2: QEMU keeps snapshots only inside qcow2 disks`,
        { capability: 'vm.snapshot', file: disk.file, format },
      );
  }
}

/** The QEMU block node of each disk, in the spec's order (the driver names the drives disk0, disk1, …). */
async function nodeNames(vm: QemuVm): Promise<string[]> {
  const blocks = await vm.qmp().execute('query-block');
  return vm.record.spec.disks.map((disk, index) => {
    const node = blocks.find((b) => b.device === `disk${index}`)?.inserted?.['node-name'];
    if (!node)
      throw new ZenithError('ZEN_DRIVER_ERROR', `QEMU does not show the disk ${disk.file}`, {
        device: `disk${index}`,
      });
    return node;
  });
}
