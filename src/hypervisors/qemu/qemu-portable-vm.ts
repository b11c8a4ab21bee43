/**
 * The QEMU driver's portable-VM facet: a VM described as any host could run
 * it, and a VM run here from such a description with the disks it has. This
 * driver runs i440fx machines with SeaBIOS, qcow2 disks on virtio and
 * virtio-net NICs on user-mode networking or a host bridge; a description
 * asking for anything else is refused (ZEN_UNSUPPORTED), never run otherwise.
 *
 * Disks are claimed for the VM's UUID (disk-claims.ts): a VM that ran on
 * another host sharing the storage already holds them under the same UUID,
 * any other VM's disk is refused. Whether another QEMU still has a disk open
 * is for QEMU's image locking to say when this one starts.
 */
import { existsSync } from 'node:fs';
import { ZenithError } from '../../core/errors.js';
import type { ActionContext, DiscoveredVm } from '../driver-types.js';
import type {
  PortableDisk,
  PortableLocation,
  PortableNic,
  PortableVm,
  PortableVmFacet,
  RunOptions,
} from '../facets/portable-vm.js';
import { backingChain, imageInfo } from './qemu-img.js';
import type { QemuHost } from './qemu-host.js';
import type { QemuBoot, QemuDiskSpec, QemuNicSpec } from './vm-spec.js';

const MiB = 1048576;

function unsupported(what: string, details: Record<string, unknown>): ZenithError {
  return new ZenithError('ZEN_UNSUPPORTED', `a QEMU host cannot run ${what}`, details);
}

/** A path on this host: QEMU hosts have storage roots, not datastores. */
function hostPath(location: PortableLocation): string {
  if (location.datastore !== undefined)
    throw unsupported(`a file inside datastore '${location.datastore}'`, {
      datastore: location.datastore,
    });
  return location.path;
}

function nicSpec(nic: PortableNic): QemuNicSpec {
  if (nic.model !== 'virtio') throw unsupported(`a ${nic.model} NIC`, { model: nic.model });
  if (nic.attachment.kind === 'network')
    throw unsupported(`a NIC on the managed network '${nic.attachment.network}'`, {
      network: nic.attachment.network,
    });
  if (nic.attachment.kind === 'isolated') return { mode: 'user', mac: nic.mac, isolated: true };
  return nic.attachment.kind === 'bridge'
    ? { mode: 'bridge', bridge: nic.attachment.bridge, mac: nic.mac }
    : { mode: 'user', mac: nic.mac };
}

export class QemuPortableVms implements PortableVmFacet {
  /** Over its own stopped definition, keeping its id (a restore over the original). */
  readonly redefinesStopped = true;
  /** Started with -S: QEMU waits for `cont` (resumeVm) before the guest runs. */
  readonly startsPaused = true;

  constructor(private readonly host: QemuHost) {}

  async describeVm(id: string): Promise<PortableVm> {
    const vm = this.host.vm(id);
    const spec = vm.record.spec;
    if (!spec.uuid)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${spec.name} was made before VMs had a UUID: it has no identity another host could keep`,
      );
    const disks: PortableDisk[] = [];
    for (const disk of spec.disks)
      disks.push({
        location: { path: disk.file },
        format: 'qcow2',
        bus: 'virtio',
        capacityBytes: (await imageInfo(disk.file)).virtualSizeBytes,
        // Disks the VM made (blank or overlays) are its own; attached files outlive it.
        owned: disk.sizeBytes !== undefined || disk.backingFile !== undefined,
      });
    const boot = spec.boot;
    return {
      uuid: spec.uuid,
      name: spec.name,
      cpus: spec.cpus,
      memoryBytes: spec.memoryMiB * MiB,
      firmware: 'bios',
      machine: 'pc',
      boot:
        boot.kind === 'kernel'
          ? {
              kind: 'kernel',
              kernel: { path: boot.kernel },
              ...(boot.initrd !== undefined ? { initrd: { path: boot.initrd } } : {}),
              ...(boot.cmdline !== undefined ? { cmdline: boot.cmdline } : {}),
            }
          : { kind: 'disk' },
      disks,
      nics: vm.nics.map((wiring, index) => {
        const nic = spec.nics[index]!;
        return {
          mac: wiring.mac,
          model: 'virtio',
          attachment:
            nic.mode === 'bridge'
              ? { kind: 'bridge', bridge: nic.bridge }
              : nic.isolated
                ? { kind: 'isolated' }
                : { kind: 'user' },
        };
      }),
      serialConsole: true,
      graphics: spec.vnc,
      ...(spec.guestAgent ? { guestAgent: true } : {}),
    };
  }

  async runVm(
    desc: PortableVm,
    options: RunOptions,
    context: ActionContext,
  ): Promise<DiscoveredVm> {
    // What this driver cannot run as described is refused before anything else is looked at.
    if (desc.firmware !== 'bios') throw unsupported('UEFI guests', { firmware: desc.firmware });
    if (desc.machine !== 'pc')
      throw unsupported(`${desc.machine} machines`, { machine: desc.machine });
    const files = desc.disks.map((disk) => {
      if (disk.format !== 'qcow2')
        throw unsupported(`${disk.format} disks`, { format: disk.format });
      if (disk.bus !== 'virtio') throw unsupported(`disks on ${disk.bus}`, { bus: disk.bus });
      if (disk.readOnly) throw unsupported('read-only disks', {});
      return hostPath(disk.location);
    });
    const nics = desc.nics.map(nicSpec);
    const boot: QemuBoot =
      desc.boot.kind === 'kernel'
        ? {
            kind: 'kernel',
            kernel: hostPath(desc.boot.kernel),
            ...(desc.boot.initrd ? { initrd: hostPath(desc.boot.initrd) } : {}),
            ...(desc.boot.cmdline !== undefined ? { cmdline: desc.boot.cmdline } : {}),
          }
        : { kind: 'disk' };
    // A stopped definition of this very VM (its UUID) is a copy left from an earlier stay here —
    // it failed over away and comes back, or a start here whose answer was lost never ran: it
    // goes (never its disks: they are the description's) and the VM is defined anew. One that
    // runs here, or is half of a migration, is the VM itself: refused. The control plane starts
    // a VM from its disks only when no host can run it (its host fenced): a reception of it
    // still waiting here waits for a source that sends nothing more, and goes first.
    await this.host.abandonReception(desc.uuid);
    const previous = [...this.host.all()].find((vm) => vm.record.spec.uuid === desc.uuid);
    const { discarded, kept } = await this.host.discardMovedAway([desc.uuid]);
    if (kept.length > 0)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `a VM with UUID ${desc.uuid} is on this host already (${kept[0]!.reason})`,
        { uuid: desc.uuid },
      );
    this.host.requireFreeName(desc.name);
    const owner = { uuid: desc.uuid, name: desc.name };
    const checked: Array<{ spec: QemuDiskSpec; backing: string[] }> = [];
    for (const [index, file] of files.entries()) {
      if (!existsSync(file))
        throw new ZenithError(
          'ZEN_INVALID_STATE',
          `this host does not see the disk ${file}: it must be on storage both hosts share`,
          { file },
        );
      const backing = await backingChain(file);
      this.host.claims.checkUsable(file, owner, backing);
      checked.push({ spec: diskSpec(file, desc.disks[index]!, backing), backing });
    }
    const spec = this.host.validate({
      name: desc.name,
      uuid: desc.uuid,
      cpus: desc.cpus,
      memoryMiB: Math.round(desc.memoryBytes / MiB),
      disks: checked.map((disk) => disk.spec),
      boot,
      nics,
      vnc: desc.graphics,
      accelerator: this.host.accelerator,
      ...(desc.guestAgent ? { guestAgent: true } : {}),
    });
    if (spec.boot.kind === 'kernel')
      for (const file of [spec.boot.kernel, spec.boot.initrd])
        if (file !== undefined) this.host.claims.checkImage(file, owner);
    // Claims this VM held already (from the host it ran on) stay if the run fails; new ones go.
    const taken: string[] = [];
    const release = () => {
      for (const file of taken) this.host.claims.release(file, owner);
    };
    try {
      for (const [index, disk] of spec.disks.entries()) {
        const held = this.host.claims.owner(disk.file) !== null;
        this.host.claims.claim(disk.file, owner, checked[index]!.backing);
        if (!held) taken.push(disk.file);
      }
    } catch (error) {
      release();
      throw error;
    }
    // Defined again over its own stopped definition (a restore over it), it keeps that one's id:
    // the same VM to the inventory, not a new one beside a missing one.
    const vm = this.host.instance({
      id: previous && discarded.includes(desc.uuid) ? previous.id : this.host.newVmId(),
      spec,
      createdAt: this.host.clock.now(),
      desired: 'stopped',
    });
    vm.save();
    // Not started, it is reported now, after the discarded definition's removal, so that its
    // watchers end with it present (a start reports it as it goes).
    if (!options.start) await vm.refreshNow();
    if (options.start) {
      context.progress({ percent: 50, message: 'starting QEMU' });
      try {
        await vm.start(options.paused ? ['-S'] : []);
      } catch (error) {
        // Nothing of it stays: not the record, not the claims it took (the disks were never its to remove).
        this.host.forget(vm, false);
        release();
        throw error;
      }
    }
    return this.host.view(vm);
  }
}

/**
 * The disk as the driver records it: its own disks as made here (so deleting the VM removes
 * them, and an overlay knows its base), other files as attached.
 */
function diskSpec(file: string, disk: PortableDisk, backing: string[]): QemuDiskSpec {
  if (!disk.owned) return { file, capacityBytes: disk.capacityBytes };
  const base = backing[0];
  return base !== undefined
    ? { file, backingFile: base, capacityBytes: disk.capacityBytes }
    : { file, sizeBytes: disk.capacityBytes };
}
