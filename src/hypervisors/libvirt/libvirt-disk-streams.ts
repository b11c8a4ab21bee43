/**
 * The libvirt driver's disk-stream facet, for QEMU domains of a daemon whose disks and sockets
 * this machine sees (a local daemon: the unix transport): how backup reads their disks.
 *
 * A running domain is read through libvirt's pull-mode backup (virDomainBackupBegin): QEMU
 * exports a point-in-time view of the disk over NBD on a unix socket while the guest writes on
 * (copy-before-write into a scratch overlay libvirt makes and removes), and in the same step
 * libvirt makes a checkpoint — a persistent dirty bitmap in the disk, named zenith-<target>-… —
 * that a later read starts from (the export then offers the changes as `backup-<target>`).
 * Aborting the job ends the export. A read cut off by a kill -9 leaves the job running: the next
 * read finds it by its socket's name and aborts it first.
 *
 * A stopped domain's disk file is read by qemu-nbd (read-only), in full or since a checkpoint (its
 * bitmap in the image). libvirt makes no checkpoint of an inactive domain, so such a read makes
 * none: the backup after it reads in full. Its checkpoints are released from libvirt's metadata,
 * and the bitmap from the image with qemu-img.
 *
 * A restore onto the host writes new qcow2 files directly in the directory of the connection's
 * storage pool (so the VM defined on them owns them as volumes of the pool, deleted with it),
 * through a qemu-nbd of this machine; only files of this host's directory pools that no domain has
 * as a disk are replaced or removed. Images Zenith keeps of its own — a replica's chain of points,
 * the overlays a recovered VM runs on — go in directories below the connection's pool directory
 * (imageDirectory): files there are not volumes of the pool, and chains of them are folded with
 * qemu-img as on a QEMU host (mergeOverlay).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep, isAbsolute } from 'node:path';
import { XMLBuilder } from 'fast-xml-parser';
import { ZenithError } from '../../core/errors.js';
import type { LibvirtClient } from '../../protocols/libvirt/libvirt-client.js';
import {
  CHECKPOINT_DELETE,
  domainBackupBegin,
  domainBackupGetXmlDesc,
  domainCheckpointDelete,
  domainCheckpointLookupByName,
  domainListAllCheckpoints,
} from '../../protocols/libvirt/procedures/backup.js';
import { domainGetState, domainGetXmlDesc } from '../../protocols/libvirt/procedures/domain.js';
import { domainAbortJob } from '../../protocols/libvirt/procedures/migration.js';
import type { DomainRef } from '../../protocols/libvirt/remote-types.js';
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
import { openNbdReader, readImage, ReadsUnderWay, socketPath } from '../qemu/nbd-disk-stream.js';
import { writeImage } from '../qemu/image-writer.js';
import { mergeOverlayFiles, overlayBacking } from '../qemu/overlay-files.js';
import { imageBitmaps, imageInfo, keepsBitmaps, removeImageBitmap } from '../qemu/qemu-img.js';
import { parseDomainXml, type DomainDisk } from './domain-xml.js';
import { attempt } from './libvirt-errors.js';
import type { LibvirtPortableVms } from './libvirt-portable-vm.js';
import { attr, child, parseXml } from './xml-reader.js';

/** VIR_DOMAIN_RUNNING, VIR_DOMAIN_BLOCKED, VIR_DOMAIN_PAUSED: a QEMU holds the disks. */
const ACTIVE_STATES = new Set([1, 2, 3]);

/** Names of the sockets this facet's backup jobs export on: found again after a kill -9. */
const SOCKET_MARK = 'zenith-nbd-';

const lost = checkpointLost;

export interface LibvirtDiskStreamDeps {
  client(): LibvirtClient;
  /** The connection's storage pool: where restored disks are written. */
  storagePool: string;
  lookup(uuid: string): Promise<DomainRef>;
  portable: LibvirtPortableVms;
}

interface DiskOfDomain {
  dom: DomainRef;
  active: boolean;
  disk: DomainDisk & { target: string };
  diskId: string;
  /** Every disk of the domain, as streams number them (read once per call). */
  disks: Array<DomainDisk & { target: string }>;
  file: string;
  format: 'qcow2' | 'raw';
}

export class LibvirtDiskStreams implements DiskStreamFacet {
  /** Domains whose disk is being read by this process: libvirt runs one backup job per domain. */
  readonly #reading = new ReadsUnderWay();

  constructor(private readonly deps: LibvirtDiskStreamDeps) {}

  async listDisks(uuid: string): Promise<StreamDisk[]> {
    const { dom } = await this.#domain(uuid);
    const disks = await this.#disks(dom);
    return Promise.all(
      disks.map(async (disk, index) => {
        const file = await this.deps.portable.diskPath(disk);
        return {
          diskId: `disk${index}`,
          capacityBytes: (await imageInfo(this.#local(file))).virtualSizeBytes,
          format: formatOf(disk),
        };
      }),
    );
  }

  async openReader(
    uuid: string,
    diskId: string,
    options: DiskReadOptions,
    _context: ActionContext,
  ): Promise<DiskReader> {
    const found = await this.#disk(uuid, diskId);
    return this.#reading.open(uuid, found.dom.name, () =>
      found.active ? this.#readRunning(found, options) : this.#readStopped(found, options),
    );
  }

  /** Files directly in the directory of the connection's storage pool (each a volume of it). */
  async newDiskPaths(name: string, diskIds: string[]): Promise<string[]> {
    const directory = await this.#poolDirectory('restores disks');
    const suffix = randomBytes(4).toString('hex');
    return diskIds.map((diskId) => join(directory, `${name}-${suffix}-${diskId}.qcow2`));
  }

  /** The directory of the connection's storage pool, on this machine. */
  async #poolDirectory(purpose: string): Promise<string> {
    const pool = this.deps.storagePool;
    const directory = pool ? await this.deps.portable.poolDirectory(pool) : null;
    if (!pool || !directory)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        pool
          ? `the storage pool ${pool} is not a directory pool: a libvirt host ${purpose} in one`
          : `the connection names no storage pool (settings.storagePool): a libvirt host ${purpose} in its directory`,
      );
    return this.#local(directory);
  }

  /** The connection's pool directory: where Zenith keeps images of its own, in directories. */
  async imageDirectory(): Promise<string> {
    return this.#poolDirectory('keeps images of its own');
  }

  async openWriter(disk: NewDisk, _context: ActionContext): Promise<DiskWriter> {
    if (disk.format !== 'qcow2')
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `a libvirt host is restored onto in qcow2, not ${disk.format}`,
      );
    const file = await this.#inPool(disk.location);
    const backing = disk.backing
      ? await overlayBacking(await this.#inPool(disk.backing), disk.capacityBytes)
      : null;
    if (existsSync(file)) {
      if (!disk.replace)
        throw new ZenithError('ZEN_CONFLICT', `${file} exists: a restore never overwrites a disk`, {
          file,
        });
      await this.#unused([file], 'replaced');
      rmSync(file, { force: true });
    }
    mkdirSync(dirname(file), { recursive: true });
    return writeImage(file, disk.capacityBytes, {
      replace: disk.replace === true,
      ...(disk.dataExtents ? { dataExtents: disk.dataExtents } : {}),
      ...(backing ? { backing } : {}),
    });
  }

  async removeImages(locations: PortableLocation[]): Promise<void> {
    const files = await Promise.all(locations.map((location) => this.#inPool(location)));
    await this.#unused(files, 'removed');
    for (const file of files) rmSync(file, { force: true });
    // Directories of Zenith's own below a pool go once empty; a pool's directory stays.
    const pools = new Set(await this.deps.portable.poolDirectories());
    for (const directory of new Set(files.map((file) => dirname(file))))
      if (!pools.has(directory) && existsSync(directory) && readdirSync(directory).length === 0)
        rmSync(directory, { recursive: true, force: true });
  }

  async mergeOverlay(merge: OverlayMerge): Promise<void> {
    await mergeOverlayFiles(
      {
        overlay: await this.#inPool(merge.overlay),
        backing: await this.#inPool(merge.backing),
        above: merge.above ? await this.#inPool(merge.above) : null,
      },
      (file) => this.#unused([file], 'merged'),
    );
  }

  /** A file in a directory pool of this host, or below one (the only places Zenith writes). */
  async #inPool(location: PortableLocation): Promise<string> {
    if (location.datastore !== undefined)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        'restored disks are named by path on a libvirt host',
      );
    const file = resolve(location.path);
    const within = (directory: string) => {
      const path = relative(directory, file);
      return path !== '' && !path.startsWith(`..${sep}`) && path !== '..' && !isAbsolute(path);
    };
    if (!(await this.deps.portable.poolDirectories()).some(within))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `${location.path} is not a file of a directory pool of this host`,
        { path: location.path },
      );
    return file;
  }

  /** Refuses files a domain of this host has as disks (ZEN_DISK_IN_USE). */
  async #unused(files: string[], what: 'replaced' | 'removed' | 'merged'): Promise<void> {
    const user = await this.deps.portable.diskUser(files);
    if (user)
      throw new ZenithError(
        'ZEN_DISK_IN_USE',
        `${user.file} is a disk of ${user.name}: it is not ${what}`,
        { file: user.file },
      );
  }

  async listCheckpoints(uuid: string, diskId: string): Promise<DiskCheckpoint[]> {
    const found = await this.#disk(uuid, diskId);
    return this.#checkpointsOf(found.dom, found.disk.target);
  }

  /** libvirt's checkpoints of the domain that this facet made for the disk `target`. */
  async #checkpointsOf(dom: DomainRef, target: string): Promise<DiskCheckpoint[]> {
    const { checkpoints } = await attempt(`list the checkpoints of ${dom.name}`, () =>
      this.deps.client().call(domainListAllCheckpoints, { dom, need_results: 1, flags: 0 }),
    );
    const prefix = checkpointPrefix(target);
    return checkpoints
      .filter((checkpoint) => checkpoint.name.startsWith(prefix))
      .map((checkpoint) => ({ name: checkpoint.name }));
  }

  async releaseCheckpoint(uuid: string, diskId: string, checkpoint: DiskCheckpoint): Promise<void> {
    const found = await this.#disk(uuid, diskId);
    const client = this.deps.client();
    let ref;
    try {
      ({ checkpoint: ref } = await client.call(domainCheckpointLookupByName, {
        dom: found.dom,
        name: checkpoint.name,
        flags: 0,
      }));
    } catch {
      ref = null; // Not libvirt's (any more): its bitmap may still be in the image.
    }
    if (found.active) {
      if (ref)
        await attempt(`delete the checkpoint ${checkpoint.name}`, () =>
          client.call(domainCheckpointDelete, { checkpoint: ref, flags: 0 }),
        );
      return;
    }
    // libvirt deletes no checkpoint of an inactive domain: its metadata goes, then its bitmap.
    if (ref)
      await attempt(`delete the checkpoint ${checkpoint.name}`, () =>
        client.call(domainCheckpointDelete, {
          checkpoint: ref,
          flags: CHECKPOINT_DELETE.metadataOnly,
        }),
      );
    if (
      found.format === 'qcow2' &&
      (await imageBitmaps(found.file)).some((bitmap) => bitmap.name === checkpoint.name)
    )
      await removeImageBitmap(found.file, checkpoint.name);
  }

  async #domain(uuid: string): Promise<{ dom: DomainRef; active: boolean }> {
    const dom = await this.deps.lookup(uuid);
    const { state } = await attempt(`read the state of ${dom.name}`, () =>
      this.deps.client().call(domainGetState, { dom, flags: 0 }),
    );
    return { dom, active: ACTIVE_STATES.has(state) };
  }

  /** The domain's disks as streams number them: its `disk` devices, in order. */
  async #disks(dom: DomainRef): Promise<Array<DomainDisk & { target: string }>> {
    const { xml } = await attempt(`read the definition of ${dom.name}`, () =>
      this.deps.client().call(domainGetXmlDesc, { dom, flags: 0 }),
    );
    return parseDomainXml(xml).disks.filter(
      (disk): disk is DomainDisk & { target: string } =>
        disk.device === 'disk' && disk.target !== null,
    );
  }

  async #disk(uuid: string, diskId: string): Promise<DiskOfDomain> {
    const { dom, active } = await this.#domain(uuid);
    const index = /^disk(\d+)$/.exec(diskId)?.[1];
    const disks = await this.#disks(dom);
    const disk = index === undefined ? undefined : disks[Number(index)];
    if (!disk)
      throw new ZenithError('ZEN_NOT_FOUND', `${dom.name} has no disk ${diskId}`, { diskId });
    const file = this.#local(await this.deps.portable.diskPath(disk));
    return { dom, active, disk, diskId, disks, file, format: formatOf(disk) };
  }

  /** The disk's file, which this machine must see (the daemon is local). */
  #local(file: string): string {
    if (!existsSync(file))
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${file} is not visible here: disks of a libvirt host are read only where its daemon is local`,
        { file },
      );
    return file;
  }

  async #readStopped(found: DiskOfDomain, options: DiskReadOptions): Promise<DiskReader> {
    const since = options.changedSince?.name;
    if (since) {
      if (found.format !== 'qcow2') throw lost(since, 'a raw disk keeps no bitmap');
      const bitmap = (await imageBitmaps(found.file)).find((b) => b.name === since);
      if (!bitmap) throw lost(since, 'the disk has no such bitmap');
      if (bitmap.inUse) throw lost(since, 'its QEMU ended without saving it');
    }
    return readImage(found.file, {
      format: found.format,
      ...(since ? { changedSince: since } : {}),
    });
  }

  async #readRunning(found: DiskOfDomain, options: DiskReadOptions): Promise<DiskReader> {
    const client = this.deps.client();
    const { dom, disk } = found;
    await this.#abortLeftover(dom);
    const since = options.changedSince?.name;
    // A disk that keeps no bitmap (raw, qcow2 version 2) is read in full each time, with no checkpoint.
    const tracked = await keepsBitmaps(found.file);
    if (since && !tracked) throw lost(since, 'the disk keeps no bitmaps (raw, or qcow2 version 2)');
    if (since) {
      const known = await this.#checkpointsOf(dom, disk.target);
      if (!known.some((checkpoint) => checkpoint.name === since))
        throw lost(since, 'libvirt has no such checkpoint');
    }
    const checkpoint = `${checkpointPrefix(disk.target)}${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const socket = socketPath();
    const scratch = join(tmpdir(), `zenith-scratch-${randomBytes(6).toString('hex')}.qcow2`);
    const others = found.disks.filter((other) => other.target !== disk.target);
    const backupXml = builder.build({
      domainbackup: {
        '@mode': 'pull',
        ...(since ? { incremental: since } : {}),
        server: { '@transport': 'unix', '@socket': socket },
        disks: {
          disk: [
            {
              '@name': disk.target,
              '@backup': 'yes',
              '@type': 'file',
              scratch: { '@file': scratch },
            },
            ...others.map((other) => ({ '@name': other.target, '@backup': 'no' })),
          ],
        },
      },
    });
    const checkpointXml = builder.build({
      domaincheckpoint: {
        name: checkpoint,
        disks: {
          disk: [
            { '@name': disk.target, '@checkpoint': 'bitmap' },
            ...others.map((other) => ({ '@name': other.target, '@checkpoint': 'no' })),
          ],
        },
      },
    });
    await attempt(`begin a backup of ${dom.name}`, () =>
      client.call(domainBackupBegin, {
        dom,
        backup_xml: backupXml,
        checkpoint_xml: tracked ? checkpointXml : null,
        flags: 0,
      }),
    );
    const end = async () => {
      await client.call(domainAbortJob, { dom }).catch(() => undefined);
      rmSync(socket, { force: true });
      rmSync(scratch, { force: true });
    };
    try {
      const reader = await openNbdReader(
        { path: socket },
        {
          exportName: disk.target,
          ...(since ? { changedSince: `backup-${disk.target}` } : {}),
          release: end,
        },
      );
      // virDomainBackupBegin has no quiesce flag; freezing through libvirt's own agent calls
      // (virDomainFSFreeze/Thaw around it) is not built: a libvirt domain is read crash-consistently.
      const quiesce = {
        quiesced: false,
        frozenFileSystems: 0,
        why: 'libvirt domains are backed up crash-consistently (no file-system freeze)',
      };
      return tracked
        ? { ...reader, checkpoint: { name: checkpoint }, quiesce }
        : { ...reader, quiesce };
    } catch (error) {
      await end();
      if (tracked)
        await this.releaseCheckpoint(dom.uuid, found.diskId, {
          name: checkpoint,
        }).catch(() => undefined);
      throw error;
    }
  }

  /** A backup job a read of ours left when its process was killed (its socket says so) is aborted. */
  async #abortLeftover(dom: DomainRef): Promise<void> {
    const client = this.deps.client();
    let xml: string;
    try {
      ({ xml } = await client.call(domainBackupGetXmlDesc, { dom, flags: 0 }));
    } catch {
      return; // No backup job.
    }
    const socket = attr(child(parseXml(xml, 'domainbackup', 'a backup job'), 'server'), 'socket');
    if (!socket?.includes(SOCKET_MARK))
      throw new ZenithError(
        'ZEN_CONFLICT',
        `${dom.name} has a backup job Zenith did not start: it is read once that ends`,
      );
    await attempt(`end the backup job a cut-off read left on ${dom.name}`, () =>
      client.call(domainAbortJob, { dom }),
    );
    rmSync(socket, { force: true });
  }
}

const checkpointPrefix = (target: string) => `zenith-${target}-`;

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@' });

function formatOf(disk: DomainDisk): 'qcow2' | 'raw' {
  if (disk.format === 'qcow2' || disk.format === 'raw') return disk.format;
  throw new ZenithError('ZEN_UNSUPPORTED', `a ${disk.format ?? 'format-less'} disk is not read`, {
    format: disk.format,
  });
}
