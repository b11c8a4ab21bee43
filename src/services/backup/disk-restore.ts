/**
 * One disk of a backup restored into an existing VM (Veeam's "virtual disk restore"): added to it
 * as a new disk, or over one of its disks (`replace` naming it: the confirmation that its contents
 * go). The VM must be stopped, on a host with disk streams and portable VMs that defines a VM again
 * over its own stopped definition.
 *
 * As a restore over the original does: the disk is written as a new image beside the VM's (a
 * directory of its own on the host's first storage root, or where the family says), the VM is
 * defined again over itself with that disk appended or swapped in — the driver claims the new
 * image for the VM's UUID as it defines it, so the disk belongs to that VM and no other — and a
 * replaced disk's old image is removed once no definition uses it. The restored disk takes the
 * backup's capacity, larger or smaller than the disk it replaces.
 *
 * A run cut off at any point runs again and finds how far it got by the VM's disks: the new image
 * among them (only the old image left to remove), or not (written again over what the cut-off run
 * left, then defined).
 */
import { Type, type Static } from 'typebox';
import type { DiskRestoreResult } from '../../api/backups.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Clock } from '../../core/clock.js';
import { requireFacet, type PortableDisk, type PortableVm } from '../../hypervisors/driver.js';
import type { ActionContext } from '../../hypervisors/driver-types.js';
import type { Actor } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { Tx } from '../../store/store.js';
import { quotaHoldParams, type QuotaGate } from '../quotas/quota-gate.js';
import type { Task, TaskKind, TaskService } from '../tasks/task-service.js';
import type { BackupCatalogue, CatalogueBackup } from './backup-catalogue.js';
import { manifestDisk, type ManifestDisk } from './repository/manifest.js';
import type { BackupRepository } from './repository/repository.js';
import { progressOver, restorePaths, writeRestoredDisk } from './restore-paths.js';

export interface DiskRestoreRequest {
  /** The VM the disk goes into (its id, resolved by the route); default: the backup's own VM. */
  vm?: string;
  /** The VM's disk whose contents the backup's disk replaces; absent: the disk is added. */
  replace?: string;
}

const DiskRestoreParams = Type.Object({
  backupId: Type.String(),
  repositoryId: Type.String(),
  diskId: Type.String(),
  vmId: Type.String(),
  hostId: Type.String(),
  /** The new image, chosen when the restore is asked for. */
  path: Type.String(),
  /** Over one of the VM's disks: its place among them and the image it had. */
  replace: Type.Optional(
    Type.Object({ diskId: Type.String(), index: Type.Integer(), oldPath: Type.String() }),
  ),
  /**
   * The VM as it was described when the restore was asked for: defined from it if a cut-off run
   * left the VM between its old definition and the new one.
   */
  vm: Type.Unknown(),
  /** The VM's group, whose quota holds what the VM grows by until the task ends. */
  ...quotaHoldParams,
});
type DiskRestoreParams = Static<typeof DiskRestoreParams>;

export interface DiskRestoreDeps {
  inventory: InventoryService;
  connections: ConnectionService;
  tasks: TaskService;
  clock: Clock;
  logger: Logger;
  catalogue: BackupCatalogue;
  /** A VM that grows takes more of its group's quotas, as a reconfigured one does. */
  quotas: QuotaGate;
  repository(id: string): Promise<BackupRepository>;
  /** The backup unless it is known damaged (ZEN_BACKUP_CHUNK_DAMAGED). */
  undamaged(backupId: string): Promise<CatalogueBackup>;
}

const purpose = 'restoring a disk of a backup';

export class DiskRestore {
  readonly #kind: TaskKind<DiskRestoreParams>;

  constructor(private readonly deps: DiskRestoreDeps) {
    this.#kind = deps.tasks.register({
      name: 'backup.restoreDisk',
      params: DiskRestoreParams,
      run: async ({ task, signal, progress }) =>
        deps.quotas.holdWhile(task, () => this.#run(task, { signal, progress })),
      // The VM is there all along: the run finds how far the cut-off one got by its disks.
      recover: async () => 'retry',
    });
  }

  /** Checks the request, chooses the new image's path and queues the task (on the VM). */
  async submit(
    backupId: string,
    diskId: string,
    request: DiskRestoreRequest,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    const backup = await this.deps.undamaged(backupId);
    const repository = await this.deps.repository(backup.repositoryId);
    const manifest = await repository.readManifest(backup.id);
    const disk = manifestDisk(manifest, diskId);
    const vm = this.deps.inventory.get(request.vm ?? backup.vmId);
    if (vm.kind !== 'vm') throw new ZenithError('ZEN_NOT_FOUND', `${vm.id} is not a VM`);
    if (vm.status !== 'present' || !vm.connectionId || !vm.externalId || !vm.parentId)
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} is not present on a host`, {
        vmId: vm.id,
      });
    const driver = this.deps.connections.driver(vm.connectionId);
    const streams = requireFacet(driver, 'diskStreams', purpose);
    const portable = requireFacet(driver, 'portableVms', purpose);
    if (!portable.redefinesStopped)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${vm.name}'s host cannot define a VM again over its own definition: restore the backup as a new VM`,
        { vmId: vm.id },
      );
    stopped(vm);
    const current = await portable.describeVm(vm.externalId);
    const disks = await streams.listDisks(vm.externalId);
    let replace: DiskRestoreParams['replace'];
    if (request.replace !== undefined) {
      const index = disks.findIndex((d) => d.diskId === request.replace);
      const had = current.disks[index];
      if (index < 0 || !had || disks.length !== current.disks.length)
        throw new ZenithError('ZEN_NOT_FOUND', `${vm.name} has no disk ${request.replace}`, {
          field: 'replace',
          disks: disks.map((d) => d.diskId),
        });
      replace = { diskId: request.replace, index, oldPath: had.location.path };
    }
    // What the VM grows by (the restored disk has the backup's capacity) is reserved against its
    // group's quota when the task is recorded, as a reconfiguration's growth is.
    const growth = Math.max(
      0,
      disk.capacityBytes - (replace ? current.disks[replace.index]!.capacityBytes : 0),
    );
    const group = growth > 0 ? await this.deps.quotas.groupOfVm(vm.id) : null;
    const host = this.deps.inventory.get(vm.parentId);
    const [path] = await restorePaths(host, streams, `${vm.name}-${diskId}-restored`, [diskId]);
    return this.deps.tasks.submit({
      kind: this.#kind,
      targetId: vm.id,
      params: {
        backupId: backup.id,
        repositoryId: backup.repositoryId,
        diskId,
        vmId: vm.id,
        hostId: host.id,
        path: path!,
        ...(replace ? { replace } : {}),
        vm: current,
        ...(group ? { group } : {}),
      },
      owner,
      ...(requestId ? { requestId } : {}),
      ...(group
        ? {
            prepare: (tx: Tx, taskId: string) =>
              this.deps.quotas.reserve(tx, taskId, group, {
                vcpus: 0,
                memoryBytes: 0,
                diskBytes: growth,
                vms: 0,
              }),
          }
        : {}),
    });
  }

  async #run(task: Task<DiskRestoreParams>, context: ActionContext): Promise<DiskRestoreResult> {
    const { params } = task;
    const vm = this.deps.inventory.get(params.vmId);
    const host = this.deps.inventory.get(params.hostId);
    if (!host.connectionId || host.status !== 'present')
      throw new ZenithError('ZEN_INVALID_STATE', `${host.name} is not connected`);
    // On another host now (moved meanwhile): never defined a second time here.
    if (vm.connectionId !== host.connectionId)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.name} is on another host now: no disk is restored into it on ${host.name}`,
        { vmId: vm.id },
      );
    const driver = this.deps.connections.driver(host.connectionId);
    const streams = requireFacet(driver, 'diskStreams', purpose);
    const portable = requireFacet(driver, 'portableVms', purpose);
    const repository = await this.deps.repository(params.repositoryId);
    const manifest = await repository.readManifest(params.backupId);
    const disk = manifest.disks.find((d) => d.diskId === params.diskId);
    if (!disk)
      throw new ZenithError('ZEN_NOT_FOUND', `backup ${manifest.id} has no disk ${params.diskId}`);
    // Missing from its host only if a cut-off run was stopped between letting go of its old
    // definition and making the new one: it is defined from the description taken when asked.
    const present = vm.status === 'present' && vm.externalId !== null;
    const now = present ? await portable.describeVm(vm.externalId!) : (params.vm as PortableVm);
    const at = now.disks.findIndex((d) => d.location.path === params.path);
    const done = at >= 0;
    if (!done) {
      if (present) stopped(vm, true);
      // The disk named is no longer the image it was when asked (another restore over it came
      // first): replacing it now would leave that image behind, no VM's.
      if (
        params.replace &&
        now.disks[params.replace.index]?.location.path !== params.replace.oldPath
      )
        throw new ZenithError(
          'ZEN_CONFLICT',
          `${vm.name}'s ${params.replace.diskId} changed since the restore was asked for: ask again`,
          { vmId: vm.id, diskId: params.replace.diskId },
        );
      const written = await this.#write(params, repository, disk, streams, context);
      const described = manifest.vm.description as PortableVm | undefined;
      const restored: PortableDisk = {
        // The bus the VM's disks are on (its guest has the driver), else the one the disk was on.
        bus:
          now.disks[params.replace?.index ?? 0]?.bus ??
          described?.disks[Number(params.diskId.replace('disk', ''))]?.bus ??
          'virtio',
        location: written.location,
        format: written.format,
        capacityBytes: disk.capacityBytes,
        owned: true,
        readOnly: false,
      };
      const disks = params.replace
        ? now.disks.map((d, index) => (index === params.replace!.index ? restored : d))
        : [...now.disks, restored];
      try {
        const arrived = await portable.runVm(
          { ...now, disks },
          { start: false, over: true },
          context,
        );
        await this.deps.inventory.applyChanges(host.connectionId, [arrived]);
      } catch (error) {
        // Refused (nothing defined): the image no VM came to use goes with the refusal.
        if (isZenithError(error))
          await streams
            .removeImages([written.location])
            .catch((cause: unknown) =>
              this.deps.logger.warn(
                { err: cause, task: task.id },
                'the image of a refused disk restore stays',
              ),
            );
        throw error;
      }
    }
    // The image it had, no longer any definition's.
    if (params.replace && params.replace.oldPath !== params.path)
      await streams.removeImages([{ path: params.replace.oldPath }]);
    const index = params.replace?.index ?? (done ? at : now.disks.length);
    return {
      vmId: vm.id,
      name: vm.name,
      backupId: params.backupId,
      diskId: params.diskId,
      vmDiskId: params.replace?.diskId ?? `disk${index}`,
      path: params.path,
      capacityBytes: disk.capacityBytes,
      replaced: params.replace !== undefined,
    };
  }

  /** The backup's disk written as a new image at the task's path (what a cut-off run left is replaced). */
  async #write(
    params: DiskRestoreParams,
    repository: BackupRepository,
    disk: ManifestDisk,
    streams: ReturnType<typeof requireFacet<'diskStreams'>>,
    context: ActionContext,
  ): Promise<PortableDisk> {
    const progress = progressOver(
      disk.capacityBytes,
      this.deps.clock.now(),
      this.deps.clock,
      (update) => context.progress(update),
      'writing',
    );
    progress.next(disk.diskId, 0);
    return writeRestoredDisk(repository, disk, streams, params.path, context, {
      progress: (p) => progress.update(p),
      damaged: (error) => this.deps.catalogue.markDamaged([params.backupId], error.message),
    });
  }
}

/** Refuses a VM that is not stopped: its definition is replaced, which a running VM's is not. */
function stopped(vm: ManagedObject, meanwhile = false): void {
  const state = vm.facts['power.state'];
  if (state !== 'stopped')
    throw new ZenithError(
      'ZEN_INVALID_STATE',
      `${vm.name} is ${String(state)}${meanwhile ? ' (started meanwhile)' : ''}: stop it before a disk is restored into it`,
      { vmId: vm.id, powerState: state },
    );
}
