/**
 * The libvirt driver's portable-VM facet (QEMU domains): a domain described as any host could run
 * it, and a domain defined and started here from such a description with the disks it has — how
 * high availability restarts the VMs of a failed libvirt host on another one. The UUID and MACs
 * are kept (the inventory knows the VM by its UUID: the restarted domain is the same VM), and
 * the Zenith metadata goes with it (which of its disks it owns, deleted with it).
 *
 * Disks are files (or block devices) at paths both hosts see: a volume is described by its path.
 * What this driver cannot run as described is refused (ZEN_UNSUPPORTED), never run otherwise.
 */
import { dirname, basename, isAbsolute } from 'node:path';
import { ZenithError } from '../../core/errors.js';
import type { LibvirtClient } from '../../protocols/libvirt/libvirt-client.js';
import {
  DOMAIN_STATE,
  DOMAIN_XML,
  UNDEFINE,
  connectListAllDomains,
  domainCreate,
  domainDefineXml,
  domainGetState,
  domainGetXmlDesc,
  domainLookupByName,
  domainLookupByUuid,
  domainUndefineFlags,
} from '../../protocols/libvirt/procedures/domain.js';
import {
  connectListAllStoragePools,
  storagePoolGetXmlDesc,
  storagePoolLookupByName,
  storagePoolRefresh,
  storageVolGetXmlDesc,
  storageVolLookupByName,
} from '../../protocols/libvirt/procedures/storage.js';
import { isNoDomainError } from '../../protocols/libvirt/remote-error.js';
import type { DomainRef } from '../../protocols/libvirt/remote-types.js';
import {
  typedParamNumber,
  typedParamsToRecord,
  type TypedParam,
} from '../../protocols/libvirt/remote-types.js';
import type { ActionContext, DiscoveredVm } from '../driver-types.js';
import type {
  PortableDisk,
  PortableDiskBus,
  PortableDiskFormat,
  PortableLocation,
  PortableNic,
  PortableNicModel,
  PortableVm,
  PortableVmFacet,
  RunOptions,
} from '../facets/portable-vm.js';
import { portableDomainXml, type PortableDomainPlan } from './domain-builder.js';
import { domainTypeFor } from './domain-lifecycle.js';
import { parseDomainXml, type DomainDescription } from './domain-xml.js';
import { parsePoolXml } from './host-xml.js';
import { attempt } from './libvirt-errors.js';
import type { LibvirtHost } from './libvirt-inventory.js';
import { mapLimit, readDomain, readDomainStats } from './libvirt-reader.js';
import type { LibvirtSettings } from './libvirt-settings.js';
import { childText, child, parseXml } from './xml-reader.js';
import type { OwnedVolume } from './zenith-metadata.js';

export interface LibvirtPortableDeps {
  client(): LibvirtClient;
  host(): LibvirtHost;
  settings: LibvirtSettings;
  lookup(uuid: string): Promise<DomainRef>;
  read(dom: DomainRef): Promise<DiscoveredVm>;
}

const formats: readonly string[] = ['qcow2', 'raw', 'vmdk'] satisfies PortableDiskFormat[];
const buses: readonly string[] = ['virtio', 'scsi', 'sata', 'ide'] satisfies PortableDiskBus[];
const nicModels: readonly string[] = [
  'virtio',
  'e1000',
  'e1000e',
  'rtl8139',
  'vmxnet3',
] satisfies PortableNicModel[];

function unsupported(what: string, details: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('ZEN_UNSUPPORTED', `a libvirt host cannot run ${what}`, details);
}

/** A storage pool as a directory of files (null: not a directory pool). */
interface PoolDirectory {
  name: string;
  path: string | null;
}

export class LibvirtPortableVms implements PortableVmFacet {
  /** Over its own stopped definition when asked (`over`): a restore over the original. */
  readonly redefinesStopped = true;

  constructor(private readonly deps: LibvirtPortableDeps) {}

  async describeVm(uuid: string): Promise<PortableVm> {
    const client = this.deps.client();
    const dom = await this.deps.lookup(uuid);
    const stats = await readDomainStats(client, [dom]);
    const reading = await attempt(`read ${dom.name}`, () =>
      readDomain(client, dom, stats.get(dom.uuid)),
    );
    const d = reading.description;
    if (!d)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${dom.name}'s definition cannot be read: ${reading.descriptionError ?? 'unknown'}`,
      );
    if (d.type !== 'kvm' && d.type !== 'qemu')
      throw unsupported(`a ${d.type} domain from a description`, { domainType: d.type });
    const pools = await this.#pools(client);
    const owned = new Set(
      (d.zenith?.ownedVolumes ?? []).map((v) => volumePath(pools, v)).filter((p) => p !== null),
    );
    const disks: PortableDisk[] = [];
    for (const disk of d.disks) {
      if (disk.device === 'cdrom' || disk.device === 'floppy') {
        if (disk.source === null) continue; // an empty drive: nothing of the host in it
        throw unsupported('a VM with removable media inserted (eject it first)', {
          device: disk.device,
          source: disk.source,
        });
      }
      if (disk.device !== 'disk') throw unsupported(`a ${disk.device} disk`, {});
      const path = await this.#diskPath(client, disk);
      const format = disk.format ?? 'raw';
      if (!formats.includes(format)) throw unsupported(`${format} disks`, { format });
      if (disk.bus === null || !buses.includes(disk.bus))
        throw unsupported(`disks on ${disk.bus ?? 'an unknown bus'}`, { bus: disk.bus });
      const capacity = capacityOf(reading.stats, path);
      disks.push({
        location: { path },
        format: format as PortableDiskFormat,
        bus: disk.bus as PortableDiskBus,
        capacityBytes: capacity ?? 0,
        owned: owned.has(path) || (disk.pool !== null && isOwnedVolume(d, disk.pool, disk.volume)),
        ...(disk.readOnly ? { readOnly: true } : {}),
      });
    }
    return {
      uuid: d.uuid,
      name: d.name,
      cpus: d.vcpus,
      memoryBytes: d.memoryBytes,
      firmware: d.firmware,
      machine: machineOf(d.machine),
      boot: d.kernel
        ? {
            kind: 'kernel',
            kernel: { path: d.kernel.kernel },
            ...(d.kernel.initrd ? { initrd: { path: d.kernel.initrd } } : {}),
            ...(d.kernel.cmdline ? { cmdline: d.kernel.cmdline } : {}),
          }
        : { kind: 'disk' },
      disks,
      nics: d.interfaces.map((nic): PortableNic => {
        if (!nic.mac) throw unsupported('a NIC without a MAC address', {});
        const model = nic.model ?? '';
        if (!nicModels.includes(model))
          throw unsupported(`a ${model || 'model-less'} NIC`, { model });
        const attachment: PortableNic['attachment'] =
          nic.type === 'network' && nic.source
            ? { kind: 'network', network: nic.source }
            : nic.type === 'bridge' && nic.source
              ? { kind: 'bridge', bridge: nic.source }
              : nic.type === 'user'
                ? { kind: 'user' }
                : (() => {
                    throw unsupported(`a NIC of type ${nic.type}`, { type: nic.type });
                  })();
        return { mac: nic.mac, model: model as PortableNicModel, attachment };
      }),
      serialConsole: d.serialConsole,
      graphics: d.graphics.length > 0,
    };
  }

  async runVm(
    desc: PortableVm,
    options: RunOptions,
    context: ActionContext,
  ): Promise<DiscoveredVm> {
    const client = this.deps.client();
    const host = this.deps.host();
    if (host.driver !== 'qemu')
      throw unsupported(`VMs from a description on its ${host.driver} driver`, {
        driver: host.driver,
      });
    await this.#requireFree(client, host, desc, options.over === true);
    const pools = await this.#pools(client);
    const disks = await Promise.all(
      desc.disks.map(async (disk) => ({
        path: await this.#hostPath(client, disk.location),
        format: disk.format,
        bus: disk.bus,
        readOnly: disk.readOnly === true,
      })),
    );
    const kernel =
      desc.boot.kind === 'kernel'
        ? {
            kernel: await this.#hostPath(client, desc.boot.kernel),
            ...(desc.boot.initrd ? { initrd: await this.#hostPath(client, desc.boot.initrd) } : {}),
            ...(desc.boot.cmdline !== undefined ? { cmdline: desc.boot.cmdline } : {}),
          }
        : null;
    await this.#requireDisksFree(
      client,
      desc,
      disks.map((d) => d.path),
    );
    // Its own disks stay its own here (deleted with it) where a pool of this host holds them.
    const ownedVolumes: OwnedVolume[] = [];
    for (const [index, disk] of disks.entries()) {
      if (!desc.disks[index]!.owned) continue;
      const pool = pools.find((p) => p.path !== null && p.path === dirname(disk.path));
      if (!pool) continue;
      await this.#seeVolume(client, pool.name, basename(disk.path));
      ownedVolumes.push({ pool: pool.name, name: basename(disk.path) });
    }
    const plan: PortableDomainPlan = {
      domainType: domainTypeFor(host, this.deps.settings, undefined),
      arch: host.capabilities.arch,
      name: desc.name,
      uuid: desc.uuid,
      cpus: desc.cpus,
      memoryBytes: desc.memoryBytes,
      firmware: desc.firmware,
      machine: desc.machine,
      kernel,
      disks,
      nics: desc.nics.map((nic) =>
        nic.attachment.kind === 'isolated'
          ? unsupportedIsolated()
          : nic.attachment.kind === 'network'
            ? { type: 'network', mac: nic.mac, model: nic.model, source: nic.attachment.network }
            : nic.attachment.kind === 'bridge'
              ? { type: 'bridge', mac: nic.mac, model: nic.model, source: nic.attachment.bridge }
              : { type: 'user', mac: nic.mac, model: nic.model, source: '' },
      ),
      serialConsole: desc.serialConsole,
      graphics: desc.graphics,
      ownedVolumes,
    };
    context.progress({ percent: 40, message: `defining ${desc.name}` });
    const dom = await attempt(
      `define ${desc.name}`,
      async () => (await client.call(domainDefineXml, { xml: portableDomainXml(plan) })).dom,
    );
    if (options.start) {
      context.progress({ percent: 60, message: `starting ${desc.name}` });
      try {
        await attempt(`start ${desc.name}`, () => client.call(domainCreate, { dom }));
      } catch (error) {
        // A failed run leaves nothing defined (the disks were never its to remove here).
        await client
          .call(domainUndefineFlags, { dom, flags: UNDEFINE.managedSave | UNDEFINE.nvram })
          .catch(() => undefined);
        throw error;
      }
    }
    // Looked up again: the reference from the definition has no domain id (it was not running).
    return this.deps.read(await this.deps.lookup(desc.uuid));
  }

  /**
   * Refuses a description whose UUID or name is taken here (ZEN_CONFLICT) — unless `over` and the
   * domain of that UUID is this VM's own stopped definition (same name), which it then replaces.
   */
  async #requireFree(
    client: LibvirtClient,
    host: LibvirtHost,
    desc: PortableVm,
    over: boolean,
  ): Promise<void> {
    const taken = async (lookup: () => Promise<unknown>): Promise<boolean> => {
      try {
        await lookup();
        return true;
      } catch (error) {
        if (isNoDomainError(error)) return false;
        throw error;
      }
    };
    if (over) {
      const own = await attempt('look for the VM', async () => {
        try {
          return (await client.call(domainLookupByUuid, { uuid: desc.uuid })).dom;
        } catch (error) {
          if (isNoDomainError(error)) return null;
          throw error;
        }
      });
      if (own?.name === desc.name) {
        const { state } = await attempt(`read the state of ${own.name}`, () =>
          client.call(domainGetState, { dom: own, flags: 0 }),
        );
        if (state !== DOMAIN_STATE.shutoff && state !== DOMAIN_STATE.crashed)
          throw new ZenithError(
            'ZEN_CONFLICT',
            `${own.name} is not stopped on ${host.name}: it is not defined again while it runs`,
            { uuid: desc.uuid },
          );
        return;
      }
    }
    if (
      await attempt('look for the VM', () =>
        taken(() => client.call(domainLookupByUuid, { uuid: desc.uuid })),
      )
    )
      throw new ZenithError(
        'ZEN_CONFLICT',
        `a domain with UUID ${desc.uuid} is defined on ${host.name} already`,
        { uuid: desc.uuid },
      );
    if (
      await attempt('look for the name', () =>
        taken(() => client.call(domainLookupByName, { name: desc.name })),
      )
    )
      throw new ZenithError(
        'ZEN_CONFLICT',
        `a domain named '${desc.name}' exists on ${host.name}`,
        {
          name: desc.name,
        },
      );
  }

  /** Refuses disks another domain of this host uses (ZEN_DISK_IN_USE). */
  async #requireDisksFree(client: LibvirtClient, desc: PortableVm, paths: string[]): Promise<void> {
    const user = await this.#diskUser(client, paths);
    if (user)
      throw new ZenithError(
        'ZEN_DISK_IN_USE',
        `${user.file} is a disk of ${user.name} on this host: ${desc.name} cannot use it`,
        { file: user.file, vm: user.name },
      );
  }

  /** A domain of this host (defined, running or not) that has one of the files as a disk. */
  diskUser(paths: string[]): Promise<{ name: string; file: string } | null> {
    return this.#diskUser(this.deps.client(), paths);
  }

  async #diskUser(
    client: LibvirtClient,
    paths: string[],
  ): Promise<{ name: string; file: string } | null> {
    if (paths.length === 0) return null;
    const wanted = new Set(paths);
    const { domains } = await attempt('list the domains', () =>
      client.call(connectListAllDomains, { need_results: 1, flags: 0 }),
    );
    const pools = await this.#pools(client);
    // A volume disk names its pool and volume: its file is the volume in the pool's directory.
    const fileOf = (disk: DomainDescription['disks'][number]) =>
      disk.sourceType === 'volume' && disk.pool && disk.volume
        ? volumePath(pools, { pool: disk.pool, name: disk.volume })
        : disk.source;
    const users = await mapLimit(domains, 8, async (dom) => {
      let description: DomainDescription;
      try {
        const { xml } = await client.call(domainGetXmlDesc, { dom, flags: DOMAIN_XML.inactive });
        description = parseDomainXml(xml);
      } catch {
        return null; // gone meanwhile, or a definition we cannot read (it is shown as such)
      }
      const file = description.disks.map(fileOf).find((f) => f !== null && wanted.has(f));
      return file ? { name: dom.name, file } : null;
    });
    return users.find((u) => u !== null) ?? null;
  }

  /** The directory of a pool of this host (null: not a directory pool, or no such pool). */
  async poolDirectory(name: string): Promise<string | null> {
    return (await this.#pools(this.deps.client())).find((pool) => pool.name === name)?.path ?? null;
  }

  /** The directories of this host's directory pools. */
  async poolDirectories(): Promise<string[]> {
    return (await this.#pools(this.deps.client())).flatMap((pool) =>
      pool.path ? [pool.path] : [],
    );
  }

  async #pools(client: LibvirtClient): Promise<PoolDirectory[]> {
    const { pools } = await attempt('list the storage pools', () =>
      client.call(connectListAllStoragePools, { need_results: 1, flags: 0 }),
    );
    return mapLimit(pools, 4, async (pool) => {
      try {
        const { xml } = await client.call(storagePoolGetXmlDesc, { pool, flags: 0 });
        return { name: pool.name, path: parsePoolXml(xml).targetPath };
      } catch {
        return { name: pool.name, path: null };
      }
    });
  }

  /** A disk's file on this host: its source, or for a volume, the volume's path. */
  diskPath(disk: DomainDescription['disks'][number]): Promise<string> {
    return this.#diskPath(this.deps.client(), disk);
  }

  async #diskPath(
    client: LibvirtClient,
    disk: DomainDescription['disks'][number],
  ): Promise<string> {
    if ((disk.sourceType === 'file' || disk.sourceType === 'block') && disk.source)
      return disk.source;
    if (disk.sourceType === 'volume' && disk.pool && disk.volume)
      return this.#volumeFile(client, disk.pool, disk.volume);
    throw unsupported(`a ${disk.sourceType} disk from a description`, {
      sourceType: disk.sourceType,
    });
  }

  async #volumeFile(client: LibvirtClient, poolName: string, name: string): Promise<string> {
    return attempt(`find the volume ${poolName}/${name}`, async () => {
      const { pool } = await client.call(storagePoolLookupByName, { name: poolName });
      const { vol } = await client.call(storageVolLookupByName, { pool, name });
      const { xml } = await client.call(storageVolGetXmlDesc, { vol, flags: 0 });
      const path = childText(
        child(parseXml(xml, 'volume', 'a volume description'), 'target'),
        'path',
      );
      if (!path) throw unsupported(`the volume ${poolName}/${name}, which has no path`, {});
      return path;
    });
  }

  /** A file of the description on this host: an absolute path, or a volume of a pool here. */
  async #hostPath(client: LibvirtClient, location: PortableLocation): Promise<string> {
    if (location.datastore !== undefined)
      return this.#volumeFile(client, location.datastore, location.path);
    if (!isAbsolute(location.path))
      throw new ZenithError('ZEN_BAD_REQUEST', `${location.path} is not an absolute path`);
    return location.path;
  }

  /** Makes the pool list a volume another host made in it (the pool is re-read). */
  async #seeVolume(client: LibvirtClient, poolName: string, name: string): Promise<void> {
    await attempt(`refresh the pool ${poolName}`, async () => {
      const { pool } = await client.call(storagePoolLookupByName, { name: poolName });
      await client.call(storagePoolRefresh, { pool, flags: 0 });
      // Not there even now: this host does not see the file.
      try {
        await client.call(storageVolLookupByName, { pool, name });
      } catch {
        throw new ZenithError(
          'ZEN_INVALID_STATE',
          `this host does not see the disk ${name} in pool ${poolName}: it must be on storage both hosts share`,
          { pool: poolName, volume: name },
        );
      }
    });
  }
}

function machineOf(machine: string | null): 'pc' | 'q35' {
  if (machine === null || machine === 'pc' || machine.startsWith('pc-i440fx')) return 'pc';
  if (machine === 'q35' || machine.startsWith('pc-q35')) return 'q35';
  throw unsupported(`a ${machine} machine`, { machine });
}

function volumePath(pools: PoolDirectory[], volume: OwnedVolume): string | null {
  const pool = pools.find((p) => p.name === volume.pool);
  return pool?.path ? `${pool.path}/${volume.name}` : null;
}

function isOwnedVolume(d: DomainDescription, pool: string, volume: string | null): boolean {
  return (d.zenith?.ownedVolumes ?? []).some((v) => v.pool === pool && v.name === volume);
}

/** A disk's size as the guest sees it, from the domain's block statistics (matched by path). */
function capacityOf(stats: readonly TypedParam[], path: string): number | undefined {
  const record = typedParamsToRecord(stats);
  const count = typedParamNumber(stats, 'block.count') ?? 0;
  for (let i = 0; i < count; i++)
    if (record[`block.${i}.path`] === path) return typedParamNumber(stats, `block.${i}.capacity`);
  return undefined;
}

/** libvirt has no network that reaches nothing without one defined for it: refused. */
function unsupportedIsolated(): never {
  throw new ZenithError(
    'ZEN_UNSUPPORTED',
    'a libvirt host has no isolated NIC of its own: map the NIC to a network or bridge without an uplink',
  );
}
