/**
 * A libvirt host's storage-scan facet: the volumes of its active storage pools, each pool refreshed
 * first (libvirt then reads each file's header itself, as qemu-img would), read as volume XML —
 * format, capacity, allocation, backing store — with the domain that uses each one. libvirt keeps
 * no claims of its own on disks: a volume no domain uses is an image, never "orphaned" (see
 * docs/images.md). A pool that cannot be refreshed is a coded error beside the others.
 */
import { ZenithError } from '../../core/errors.js';
import type { Clock } from '../../core/clock.js';
import type { LibvirtClient } from '../../protocols/libvirt/libvirt-client.js';
import {
  connectListAllDomains,
  domainGetXmlDesc,
} from '../../protocols/libvirt/procedures/domain.js';
import {
  connectListAllStoragePools,
  POOL_STATE,
  storagePoolGetInfo,
  storagePoolGetXmlDesc,
  storagePoolListAllVolumes,
  storagePoolRefresh,
  storageVolGetXmlDesc,
} from '../../protocols/libvirt/procedures/storage.js';
import type { ActionContext } from '../driver-types.js';
import type {
  ScannedImage,
  ScannedImageFormat,
  ScannedRoot,
  ScanSkips,
  StorageScan,
  StorageScanFacet,
} from '../facets/storage-scan.js';
import { parseDomainXml } from './domain-xml.js';
import { parsePoolXml } from './host-xml.js';
import { mapLimit } from './libvirt-reader.js';
import { attr, child, childText, parseXml, sizeBytes } from './xml-reader.js';

/** What a volume's XML says (what the scan needs of it). */
export interface VolumeDescription {
  name: string;
  path: string | null;
  format: string | null;
  capacityBytes: number;
  allocationBytes: number;
  physicalBytes: number | null;
  backingPath: string | null;
  modifiedAt: number | null;
}

export function parseVolumeXml(xml: string): VolumeDescription {
  const volume = parseXml(xml, 'volume', 'a storage volume description');
  const target = child(volume, 'target');
  const mtime = childText(child(target, 'timestamps'), 'mtime');
  return {
    name: childText(volume, 'name') ?? '',
    path: childText(target, 'path') ?? null,
    format: attr(child(target, 'format'), 'type') ?? null,
    capacityBytes: sizeBytes(child(volume, 'capacity'), 'bytes') ?? 0,
    allocationBytes: sizeBytes(child(volume, 'allocation'), 'bytes') ?? 0,
    physicalBytes: sizeBytes(child(volume, 'physical'), 'bytes') ?? null,
    backingPath: childText(child(volume, 'backingStore'), 'path') ?? null,
    modifiedAt: mtime === undefined ? null : Math.floor(Number(mtime) * 1000),
  };
}

/** The image format of a volume, or null for what is no image of ours (dirs, other formats). */
function formatOf(volume: VolumeDescription): ScannedImageFormat | null {
  switch (volume.format) {
    case 'qcow2':
    case 'vmdk':
    case 'iso':
      return volume.format;
    case 'raw':
      return /\.iso$/i.test(volume.name) ? 'iso' : 'raw';
    default:
      return null;
  }
}

export class LibvirtStorageScan implements StorageScanFacet {
  constructor(private readonly deps: { client: () => LibvirtClient; clock: Clock }) {}

  async scanStorage(context: ActionContext): Promise<StorageScan> {
    const client = this.deps.client();
    const startedAt = this.deps.clock.now();
    const skipped: ScanSkips = {
      linksOutside: 0,
      brokenLinks: 0,
      tooDeep: 0,
      unreadable: 0,
      notImages: 0,
    };
    // Which domain uses each file, by path and by pool/volume.
    const { domains } = await client.call(connectListAllDomains, { need_results: 1, flags: 0 });
    const owners = new Map<string, { vmUuid: string; vmName: string }>();
    await mapLimit(domains, 4, async (dom) => {
      try {
        const { xml } = await client.call(domainGetXmlDesc, { dom, flags: 0 });
        for (const disk of parseDomainXml(xml).disks)
          if (disk.source) owners.set(disk.source, { vmUuid: dom.uuid, vmName: dom.name });
      } catch {
        // A domain gone since the list, or one whose XML Zenith cannot read: it claims nothing.
      }
    });
    const { pools } = await client.call(connectListAllStoragePools, { need_results: 1, flags: 0 });
    const roots: ScannedRoot[] = [];
    const images: ScannedImage[] = [];
    for (const pool of pools) {
      context.signal.throwIfAborted();
      const [{ xml }, info] = await Promise.all([
        client.call(storagePoolGetXmlDesc, { pool, flags: 0 }),
        client.call(storagePoolGetInfo, { pool }),
      ]);
      const description = parsePoolXml(xml);
      const root = description.targetPath ?? `pool:${description.name}`;
      if (info.state !== POOL_STATE.running && info.state !== POOL_STATE.degraded) continue;
      try {
        await client.call(storagePoolRefresh, { pool, flags: 0 });
      } catch (error) {
        roots.push({
          root,
          error: {
            code: 'ZEN_STORAGE_ROOT_UNREADABLE',
            message: `the storage pool ${description.name} could not be refreshed: ${(error as Error).message}`,
          },
        });
        continue;
      }
      roots.push({ root, error: null });
      const { vols } = await client.call(storagePoolListAllVolumes, {
        pool,
        need_results: 1,
        flags: 0,
      });
      const read = await mapLimit(vols, 4, async (vol) => {
        try {
          return parseVolumeXml((await client.call(storageVolGetXmlDesc, { vol, flags: 0 })).xml);
        } catch (error) {
          if (error instanceof ZenithError) return null;
          throw error;
        }
      });
      for (const volume of read) {
        if (!volume) {
          skipped.unreadable += 1;
          continue;
        }
        const format = formatOf(volume);
        if (!format || !volume.path) {
          skipped.notImages += 1;
          continue;
        }
        images.push({
          path: volume.path,
          root,
          format,
          kind: format === 'iso' ? 'iso' : 'disk',
          virtualBytes: volume.capacityBytes,
          fileBytes: volume.physicalBytes ?? volume.capacityBytes,
          allocatedBytes: volume.allocationBytes,
          backingFile: volume.backingPath,
          label: null,
          problem: null,
          linkTarget: null,
          modifiedAt: volume.modifiedAt ?? startedAt,
          owner:
            owners.get(volume.path) ?? owners.get(`${description.name}/${volume.name}`) ?? null,
        });
      }
      context.progress({
        percent: Math.floor((roots.length / pools.length) * 100),
        message: `${images.length} images in ${roots.length} of ${pools.length} pools`,
      });
    }
    images.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return {
      startedAt,
      finishedAt: this.deps.clock.now(),
      roots,
      images,
      skipped,
      truncated: false,
      // Every domain is defined here: a disk one uses is in use.
      definedVmUuids: domains.map((dom) => dom.uuid),
    };
  }
}
