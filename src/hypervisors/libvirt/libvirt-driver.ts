/**
 * The agentless libvirt driver: one connection to one libvirt daemon (one
 * host), by URI — qemu:///system, qemu+tls://host/system, test+unix:///default,
 * lxc:///, xen+tls://host/system. Discovery maps the host, domains, networks
 * and storage pools; domain events are re-read and reported at once; actions
 * are libvirt calls. Live migration to another libvirt connection is driven
 * by the control plane through the migration facet
 * (libvirt-migration-endpoint.ts), over the migration methods at the end.
 */
import { LibvirtStorageScan } from './libvirt-storage-scan.js';
import { realpathSync } from 'node:fs';
import { normalize } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { LibvirtClient } from '../../protocols/libvirt/libvirt-client.js';
import {
  DOMAIN_STATE,
  domainCreate,
  domainDestroy,
  domainGetState,
  domainLookupByUuid,
  domainReboot,
  domainResume,
  domainSuspend,
} from '../../protocols/libvirt/procedures/domain.js';
import { isNoDomainError } from '../../protocols/libvirt/remote-error.js';
import type { DomainRef } from '../../protocols/libvirt/remote-types.js';
import { DeltaFeed } from '../delta-feed.js';
import type {
  ActionContext,
  ConsoleKind,
  DiscoveredVm,
  DiscoverySnapshot,
  DriverInfo,
  HypervisorDriver,
  InventoryDelta,
  LivenessFacet,
  MigrateOptions,
  SnapshotInfo,
  VmSpec,
} from '../driver.js';
import { DomainChangeNotices } from './domain-events.js';
import { capabilitiesOf } from './libvirt-capabilities.js';
import { createDomain, shutDownGracefully, undefineDomain } from './domain-lifecycle.js';
import { openSerialConsole } from './libvirt-console.js';
import { openLibvirt } from './libvirt-connect.js';
import { attempt } from './libvirt-errors.js';
import { hostObject, vmObject, type LibvirtHost } from './libvirt-inventory.js';
import { migrateDomain, type MigrationPeer, type MigrationStats } from './libvirt-migration.js';
import { LibvirtMigrationEndpoint } from './libvirt-migration-endpoint.js';
import { LibvirtDiskStreams } from './libvirt-disk-streams.js';
import { LibvirtPortableVms } from './libvirt-portable-vm.js';
import {
  readDomain,
  readDomainStats,
  readHost,
  readNetworks,
  readVms,
  readPools,
} from './libvirt-reader.js';
import type { LibvirtSettings } from './libvirt-settings.js';
import * as snapshots from './libvirt-snapshots.js';
import { daemonAddress, parseLibvirtUri, type LibvirtUri } from './libvirt-uri.js';

export interface LibvirtDriverOptions {
  settings: LibvirtSettings;
  /** For TLS: the client's private key (PEM). */
  secret: string | null;
  clock: Clock;
  logger: Logger;
}

export class LibvirtDriver implements HypervisorDriver {
  readonly info: DriverInfo;
  /**
   * Migration and running VMs from a description only where libvirt's driver can do them through
   * Zenith (QEMU: see capabilitiesOf); the connection's liveness always.
   */
  readonly facets: {
    migration?: LibvirtMigrationEndpoint;
    portableVms?: LibvirtPortableVms;
    /** QEMU domains of a local daemon (its disks and sockets are on this machine). */
    diskStreams?: LibvirtDiskStreams;
    liveness: LivenessFacet;
    /** Its storage pools' volumes (the image library). */
    storageScan: LibvirtStorageScan;
  };
  readonly #options: LibvirtDriverOptions;
  readonly #uri: LibvirtUri;
  readonly #feed = new DeltaFeed();
  /** Domains whose changes are held back while a migration moves them between connections. */
  readonly #held = new Set<string>();
  #client: LibvirtClient | undefined;
  #host: LibvirtHost | undefined;
  #notices: DomainChangeNotices | undefined;
  #closed = false;
  /** Why the daemon's connection ended, when it was not closed by us. */
  #lost: ZenithError | undefined;

  constructor(options: LibvirtDriverOptions) {
    this.#options = options;
    this.#uri = parseLibvirtUri(options.settings.uri);
    this.info = {
      type: 'libvirt',
      simulated: false,
      capabilities: capabilitiesOf(this.#uri.driver),
    };
    const migrates = this.info.capabilities.includes('vm.migrate');
    this.facets = {
      storageScan: new LibvirtStorageScan({
        client: () => this.#requireClient(),
        clock: options.clock,
      }),
      liveness: {
        silentMs: () => {
          const client = this.#requireClient();
          return Math.max(0, this.#options.clock.now() - client.lastReceivedAt);
        },
      },
      ...(migrates
        ? {
            migration: new LibvirtMigrationEndpoint({
              guestKind: () => this.host.driver,
              migrationPeer: () => this.migrationPeer(),
              migrateToPeer: (uuid, peer, options, context) =>
                this.migrateToPeer(uuid, peer, options, context),
              hold: (uuid) => this.#held.add(uuid),
              release: (uuid) => {
                this.#held.delete(uuid);
                this.#notices?.notice(uuid);
              },
              arrived: async (uuid) => {
                this.#held.delete(uuid);
                return this.#vm(await this.#lookup(uuid));
              },
            }),
            // Where a domain can migrate, it can be defined from a description (QEMU).
            portableVms: new LibvirtPortableVms({
              client: () => this.#requireClient(),
              host: () => this.host,
              settings: options.settings,
              lookup: (uuid) => this.#lookup(uuid),
              read: (dom) => this.#vm(dom),
            }),
          }
        : {}),
    };
    if (this.facets.portableVms && this.#uri.transport === 'unix')
      this.facets.diskStreams = new LibvirtDiskStreams({
        client: () => this.#requireClient(),
        storagePool: options.settings.storagePool,
        lookup: (uuid) => this.#lookup(uuid),
        portable: this.facets.portableVms,
      });
  }

  get host(): LibvirtHost {
    if (!this.#host)
      throw new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the libvirt driver is not connected');
    return this.#host;
  }

  async connect(): Promise<void> {
    const client = await openLibvirt({
      settings: this.#options.settings,
      secret: this.#options.secret,
      clock: this.#options.clock,
    });
    this.#client = client;
    // A lost daemon ends the change stream with the reason, so the connection service reconnects.
    client.once('close', (error: unknown) => {
      if (!this.#closed)
        this.#lost = new ZenithError(
          'ZEN_CONNECTION_DISCONNECTED',
          `lost the connection to ${this.#uri.text}: ${error instanceof Error ? error.message : 'closed'}`,
          { uri: this.#uri.text },
        );
      this.#feed.close();
    });
    try {
      this.#host = await attempt(`read the host behind ${this.#uri.text}`, () =>
        readHost(client, {
          uri: this.#uri.text,
          ...(this.#options.settings.hostName ? { hostName: this.#options.settings.hostName } : {}),
        }),
      );
      this.#notices = new DomainChangeNotices(client, (uuid) => this.#report(uuid));
      await attempt('subscribe to domain events', () => this.#notices!.start());
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  /**
   * The hypervisor driver the daemon serves (qemu:///system) on the host with this UUID; a daemon
   * whose driver reports no host UUID (libvirt's test driver) is known by its address instead.
   */
  peerIdentity(): string {
    const where = this.host.capabilities.uuid ?? daemonAddress(this.#uri, realSocketPath);
    return `libvirt:${this.#uri.remoteName}@${where}`;
  }

  async discover(): Promise<DiscoverySnapshot> {
    const client = this.#requireClient();
    const host = this.host;
    return attempt(`discover ${this.#uri.text}`, async () => {
      const vms = await readVms(client, host, (uuid) => this.#held.has(uuid));
      const [networks, pools] = await Promise.all([
        readNetworks(client, host),
        readPools(client, host),
      ]);
      return {
        objects: [hostObject(host), ...networks, ...pools, ...vms],
      };
    });
  }

  watch(signal: AbortSignal): AsyncIterable<InventoryDelta> {
    const deltas = this.#feed.watch(signal);
    const lost = () => this.#lost;
    return {
      async *[Symbol.asyncIterator]() {
        yield* deltas;
        const reason = lost();
        if (reason && !signal.aborted) throw reason;
      },
    };
  }

  // --- lifecycle ---------------------------------------------------------

  startVm(id: string, _context: ActionContext): Promise<DiscoveredVm> {
    return this.#act(id, 'start', (client, dom) => client.call(domainCreate, { dom }));
  }

  async stopVm(
    id: string,
    context: ActionContext,
    options: { force?: boolean } = {},
  ): Promise<DiscoveredVm> {
    if (options.force !== false)
      return this.#act(id, 'power off', (client, dom) => client.call(domainDestroy, { dom }));
    return this.#act(id, 'shut down', (client, dom) =>
      shutDownGracefully(client, dom, {
        timeoutMs: this.#options.settings.shutdownTimeoutMs,
        clock: this.#options.clock,
        context,
      }),
    );
  }

  rebootVm(id: string, _context: ActionContext): Promise<DiscoveredVm> {
    return this.#act(id, 'reboot', (client, dom) => client.call(domainReboot, { dom, flags: 0 }));
  }

  suspendVm(id: string, _context: ActionContext): Promise<DiscoveredVm> {
    return this.#act(id, 'suspend', (client, dom) => client.call(domainSuspend, { dom }));
  }

  resumeVm(id: string, _context: ActionContext): Promise<DiscoveredVm> {
    return this.#act(id, 'resume', (client, dom) => client.call(domainResume, { dom }));
  }

  async deleteVm(id: string, _context: ActionContext): Promise<null> {
    const client = this.#requireClient();
    const dom = await this.#lookup(id);
    const reading = await attempt(`read ${dom.name}`, () => readDomain(client, dom));
    if (reading.power.powerState !== 'stopped')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${dom.name} is ${reading.power.powerState}; stop it before deleting it`,
        { powerState: reading.power.powerState },
      );
    await undefineDomain(client, dom, reading.description, {
      driver: this.host.driver,
      logger: this.#options.logger,
    });
    this.#feed.push({ type: 'remove', kind: 'vm', externalId: dom.uuid });
    return null;
  }

  async createVm(spec: VmSpec, context: ActionContext): Promise<DiscoveredVm> {
    const host = this.host;
    if (spec.hostExternalId !== host.externalId)
      throw new ZenithError(
        'ZEN_NOT_FOUND',
        `this libvirt connection has no host ${spec.hostExternalId}`,
      );
    if (!this.info.capabilities.includes('vm.create'))
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `creating VMs through libvirt's ${host.driver} driver is not supported`,
      );
    const dom = await createDomain(
      this.#requireClient(),
      host,
      spec,
      this.#options.settings,
      context,
    );
    return this.#vm(dom);
  }

  async migrateVm(): Promise<DiscoveredVm> {
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      'a libvirt connection has one host: migrate to a host of another libvirt connection',
    );
  }

  // --- snapshots -----------------------------------------------------------

  async listSnapshots(id: string): Promise<SnapshotInfo[]> {
    return snapshots.listSnapshots(this.#requireClient(), await this.#lookup(id));
  }

  async createSnapshot(
    id: string,
    name: string,
    _context: ActionContext,
  ): Promise<{ snapshot: SnapshotInfo; vm: DiscoveredVm }> {
    const dom = await this.#lookup(id);
    const snapshot = await snapshots.createSnapshot(this.#requireClient(), dom, name);
    return { snapshot, vm: await this.#vm(dom) };
  }

  revertSnapshot(id: string, snapshotId: string, _context: ActionContext): Promise<DiscoveredVm> {
    return this.#onSnapshot(id, snapshotId, snapshots.revertSnapshot);
  }

  deleteSnapshot(id: string, snapshotId: string, _context: ActionContext): Promise<DiscoveredVm> {
    return this.#onSnapshot(id, snapshotId, snapshots.deleteSnapshot);
  }

  /** Acts on one of the domain's snapshots, then reads the VM as it left it. */
  async #onSnapshot(
    id: string,
    snapshotId: string,
    act: (client: LibvirtClient, dom: DomainRef, name: string) => Promise<void>,
  ): Promise<DiscoveredVm> {
    const dom = await this.#lookup(id);
    await act(this.#requireClient(), dom, snapshotId);
    return this.#vm(dom);
  }

  // --- console ---------------------------------------------------------------

  async openConsole(id: string, kind: ConsoleKind): Promise<Duplex> {
    if (kind !== 'serial')
      throw new ZenithError('ZEN_UNSUPPORTED', 'libvirt connections offer the serial console only');
    const dom = await this.#lookup(id);
    return openSerialConsole(
      {
        settings: this.#options.settings,
        secret: this.#options.secret,
        clock: this.#options.clock,
      },
      dom,
    );
  }

  // --- migration between libvirt connections (driven by the control plane) ----

  /** How another libvirt host reaches this one, or null when it cannot (a local socket and no migrationUri). */
  migrationPeer(): MigrationPeer | null {
    const { settings } = this.#options;
    const uri =
      settings.migrationUri ?? (this.#uri.transport === 'unix' ? undefined : settings.uri);
    if (!uri) return null;
    return { uri, ...(settings.migrationDataUri ? { dataUri: settings.migrationDataUri } : {}) };
  }

  /** Source: sends the VM to `peer`; its changes are held back until the facet's finishOutgoing or a failure. */
  async migrateToPeer(
    id: string,
    peer: MigrationPeer,
    options: MigrateOptions,
    context: ActionContext,
  ): Promise<MigrationStats> {
    const client = this.#requireClient();
    const dom = await this.#lookup(id);
    const { state } = await attempt(`read ${dom.name}`, () =>
      client.call(domainGetState, { dom, flags: 0 }),
    );
    const live = state !== DOMAIN_STATE.shutoff && state !== DOMAIN_STATE.crashed;
    this.#held.add(dom.uuid);
    try {
      return await migrateDomain(
        client,
        dom,
        peer,
        { ...options, live },
        context,
        this.#options.clock,
      );
    } catch (error) {
      this.#held.delete(dom.uuid);
      this.#notices?.notice(dom.uuid);
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#notices?.stop();
    this.#feed.close();
    await this.#client?.close();
  }

  // --- internals ---------------------------------------------------------------

  #requireClient(): LibvirtClient {
    if (!this.#client || this.#client.state !== 'open')
      throw new ZenithError('ZEN_CONNECTION_DISCONNECTED', `not connected to ${this.#uri.text}`);
    return this.#client;
  }

  async #lookup(uuid: string): Promise<DomainRef> {
    const client = this.#requireClient();
    return attempt(`find VM ${uuid}`, async () => {
      try {
        return (await client.call(domainLookupByUuid, { uuid })).dom;
      } catch (error) {
        if (isNoDomainError(error))
          throw new ZenithError(
            'ZEN_NOT_FOUND',
            `no domain with UUID ${uuid} on ${this.host.name}`,
            {
              externalId: uuid,
            },
          );
        throw error;
      }
    });
  }

  async #vm(dom: DomainRef): Promise<DiscoveredVm> {
    const client = this.#requireClient();
    return attempt(`read ${dom.name}`, async () => {
      const stats = await readDomainStats(client, [dom]);
      return vmObject(this.host, await readDomain(client, dom, stats.get(dom.uuid)));
    });
  }

  async #act(
    id: string,
    verb: string,
    work: (client: LibvirtClient, dom: DomainRef) => Promise<unknown>,
  ): Promise<DiscoveredVm> {
    const client = this.#requireClient();
    const dom = await this.#lookup(id);
    await attempt(`${verb} ${dom.name}`, () => work(client, dom));
    return this.#vm(dom);
  }

  /** Reads one domain after an event and reports it, or its removal. */
  async #report(uuid: string): Promise<void> {
    if (this.#held.has(uuid) || this.#closed) return;
    const client = this.#client;
    if (!client || client.state !== 'open') return;
    try {
      const { dom } = await client.call(domainLookupByUuid, { uuid });
      const vm = await this.#vm(dom);
      if (!this.#held.has(uuid)) this.#feed.push({ type: 'upsert', object: vm });
    } catch (error) {
      if (
        isNoDomainError(error) ||
        (error instanceof ZenithError && error.code === 'ZEN_NOT_FOUND')
      ) {
        if (!this.#held.has(uuid))
          this.#feed.push({ type: 'remove', kind: 'vm', externalId: uuid });
        return;
      }
      this.#options.logger.warn(
        { uuid, err: (error as Error).message },
        'could not read a domain after its event',
      );
    }
  }
}

/** The socket's path with symbolic links resolved (it exists once connected); as written otherwise. */
function realSocketPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return normalize(path);
  }
}
