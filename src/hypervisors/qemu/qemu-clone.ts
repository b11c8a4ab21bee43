/**
 * The disks of a clone of a stopped QEMU VM.
 *
 * - Full clone: each disk is copied with `qemu-img convert -O qcow2` into a
 *   self-contained image (its backing chain flattened), with progress.
 * - Linked clone: each disk becomes a qcow2 overlay backed by the source's
 *   disk; it takes no time and little space, but the source's disks must
 *   then never change (qemu-driver.ts refuses to start, revert or delete a
 *   VM whose disks back another VM).
 *
 * Internal snapshots are not copied: a clone starts with none. Disks are
 * written next to their final names (`.part`) and renamed at the end; on
 * failure or cancellation everything written is removed.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { ZenithError } from '../../core/errors.js';
import type { ActionContext, CloneOptions } from '../driver.js';
import { convertImage, createImage, imageInfo } from './qemu-img.js';
import type { QemuVm } from './qemu-vm.js';
import { validateSpec, type HostLimits, type QemuDiskSpec, type QemuVmSpec } from './vm-spec.js';

/**
 * The clone's spec: the source's, with the new name, a new UUID and its own
 * disk files (`NAME/diskN.qcow2` in the first storage root), which must not
 * exist yet. Checked before anything is written.
 */
export function cloneSpec(source: QemuVmSpec, name: string, limits: HostLimits): QemuVmSpec {
  const spec = validateSpec(
    {
      ...source,
      name,
      uuid: randomUUID(),
      disks: source.disks.map((_disk, index) => ({ file: `${name}/disk${index}.qcow2` })),
      // A clone is another machine: MACs the source kept from elsewhere are not its.
      nics: source.nics.map(({ mac: _, ...nic }) => nic),
    },
    limits,
  );
  for (const disk of spec.disks)
    if (existsSync(disk.file))
      throw new ZenithError('ZEN_CONFLICT', `the disk ${disk.file} exists already`, {
        file: disk.file,
      });
  return spec;
}

/** VMs whose disks are overlays on this VM's disks (linked clones, or VMs created on them as a base image). */
export function linkedClonesOf(vm: QemuVm, vms: Iterable<QemuVm>): QemuVm[] {
  const files = new Set(vm.record.spec.disks.map((d) => d.file));
  return [...vms].filter(
    (other) =>
      other !== vm &&
      other.record.spec.disks.some((d) => d.backingFile !== undefined && files.has(d.backingFile)),
  );
}

/** The VMs whose disks back this VM's disks. */
export function basesOf(vm: QemuVm, vms: Iterable<QemuVm>): QemuVm[] {
  const all = [...vms];
  return all.filter((other) => linkedClonesOf(other, all).includes(vm));
}

/**
 * Linked clones read through to their base's disks, so those disks must not
 * change while the clones exist: no start, revert, snapshot or delete.
 */
export function refuseIfBase(vm: QemuVm, vms: Iterable<QemuVm>, what: string): void {
  const clones = linkedClonesOf(vm, vms).map((c) => c.record.spec.name);
  if (clones.length > 0)
    throw new ZenithError(
      'ZEN_CONFLICT',
      `${vm.record.spec.name} cannot be ${what}: its disks back the linked clone${clones.length > 1 ? 's' : ''} ${clones.join(', ')}, which would see the change; delete ${clones.length > 1 ? 'them' : 'it'} first (or make full clones)`,
      { linkedClones: clones },
    );
}

/**
 * Writes the clone's disks at the files of `targetDisks` (one per source disk,
 * from cloneSpec) and answers their specs: a copy owns its size, an
 * overlay names its backing file, so deleting the clone removes exactly them.
 */
export async function cloneDisks(
  sources: QemuDiskSpec[],
  targetDisks: QemuDiskSpec[],
  options: CloneOptions,
  context: ActionContext,
): Promise<QemuDiskSpec[]> {
  const targets = targetDisks.map((d) => d.file);
  const linked = options.linked === true;
  context.progress({ percent: 5, message: linked ? 'linking disks' : 'copying disks' });
  const infos = await Promise.all(sources.map((disk) => imageInfo(disk.file)));
  const totalBytes = Math.max(
    1,
    infos.reduce((sum, info) => sum + info.virtualSizeBytes, 0),
  );
  const createdDirs = targets
    .map((file) => dirname(file))
    .filter((dir, index, all) => all.indexOf(dir) === index && !existsSync(dir));
  const written: string[] = [];
  try {
    for (const dir of createdDirs) mkdirSync(dir, { recursive: true });
    let doneBytes = 0;
    const specs: QemuDiskSpec[] = [];
    for (const [index, source] of sources.entries()) {
      const info = infos[index]!;
      const target = targets[index]!;
      const part = `${target}.part`;
      written.push(part);
      const message = `${linked ? 'linking' : 'copying'} disk ${index + 1} of ${sources.length}`;
      if (linked) {
        await createImage(part, { backingFile: source.file, backingFormat: info.format });
      } else {
        await convertImage(
          source.file,
          part,
          (percent) =>
            context.progress({
              percent: Math.min(
                99,
                Math.floor(
                  5 + (90 * (doneBytes + (info.virtualSizeBytes * percent) / 100)) / totalBytes,
                ),
              ),
              message,
              details: { bytesTotal: totalBytes },
            }),
          context.signal,
        );
      }
      doneBytes += info.virtualSizeBytes;
      context.progress({
        percent: Math.floor(5 + (90 * doneBytes) / totalBytes),
        message,
        details: { bytesTotal: totalBytes },
      });
      specs.push(
        linked
          ? { file: target, backingFile: source.file, capacityBytes: info.virtualSizeBytes }
          : { file: target, sizeBytes: info.virtualSizeBytes },
      );
    }
    for (const target of targets) {
      renameSync(`${target}.part`, target);
      written.push(target);
    }
    return specs;
  } catch (error) {
    for (const file of written) rmSync(file, { force: true });
    for (const dir of createdDirs.reverse())
      if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
    throw error;
  }
}
