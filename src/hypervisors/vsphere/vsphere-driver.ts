/**
 * The vsphere driver: a vCenter or a standalone ESXi through the VIM API.
 * discover() reads everything once through a ContainerView and
 * RetrievePropertiesEx; the inventory is then followed with WaitForUpdatesEx
 * (inventory-feed.ts), so a change made elsewhere (DRS, another user) reaches
 * watch() without re-reading the inventory. Actions are vSphere tasks
 * (vsphere-actions.ts). Ids are managed object reference values (vm-42).
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import {
  containerViewSpec,
  objectsSpec,
  PropertyCollector,
} from '../../protocols/vim/property-collector.js';
import { VimClient } from '../../protocols/vim/vim-client.js';
import { MoRef } from '../../protocols/vim/vim-values.js';
import { DeltaFeed } from '../delta-feed.js';
import type {
  ActionContext,
  Capability,
  DiscoveredVm,
  DiscoverySnapshot,
  DriverInfo,
  HypervisorDriver,
  InventoryDelta,
  MigrateOptions,
  VmSpec,
} from '../driver.js';
import { customFieldNames, followInventory } from './inventory-feed.js';
import { InventoryCache, propertySpecs, viewTypes } from './inventory-model.js';
import { caOf, type VsphereSettings } from './settings.js';

export interface VsphereDriverOptions {
  settings: VsphereSettings;
  password: string | null;
  clock: Clock;
  logger: Logger;
}

const capabilities: readonly Capability[] = [];

export class VsphereDriver implements HypervisorDriver {
  readonly info: DriverInfo = { type: 'vsphere', simulated: false, capabilities };
  readonly #options: VsphereDriverOptions;
  readonly #cache = new InventoryCache();
  readonly #feed = new DeltaFeed();
  readonly #stop = new AbortController();
  #client: VimClient | undefined;
  #view: MoRef | undefined;
  #following: Promise<void> | undefined;

  constructor(options: VsphereDriverOptions) {
    this.#options = options;
  }

  /** The logged-in client (for actions). */
  get client(): VimClient {
    if (!this.#client)
      throw new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the vSphere connection is not open');
    return this.#client;
  }

  get cache(): InventoryCache {
    return this.#cache;
  }

  async connect(): Promise<void> {
    const { settings, password, clock } = this.#options;
    if (!password)
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        'a vsphere connection needs the password as its secret',
        {
          key: 'secret',
        },
      );
    const ca = caOf(settings);
    this.#client = await VimClient.connect({
      url: settings.url,
      username: settings.username,
      password,
      clock,
      timeoutMs: Math.max(120_000, (settings.watchWaitSeconds + 60) * 1000),
      tls: {
        ...(settings.thumbprint ? { thumbprint: settings.thumbprint } : {}),
        ...(ca ? { ca } : {}),
      },
    });
    const view = await this.#client.invoke(
      'CreateContainerView',
      this.#client.content.viewManager,
      {
        container: this.#client.content.rootFolder,
        type: viewTypes,
        recursive: true,
      },
    );
    if (!(view instanceof MoRef))
      throw new ZenithError('VIM_PROTOCOL_ERROR', 'CreateContainerView answered no view');
    this.#view = view;
  }

  async discover(): Promise<DiscoverySnapshot> {
    const client = this.client;
    const collector = new PropertyCollector(client);
    const fields = client.content.customFieldsManager;
    const [objects, fieldDefs] = await Promise.all([
      collector.retrieveAll([containerViewSpec(this.#view!, propertySpecs)], { maxObjects: 5000 }),
      fields ? collector.retrieveOne(fields, ['field']) : Promise.resolve(undefined),
    ]);
    this.#cache.clear();
    this.#cache.customFields = customFieldNames(fieldDefs?.get('field'));
    for (const object of objects) this.#cache.put(object.obj, object.props);
    this.#follow();
    return { objects: this.#cache.snapshot() };
  }

  watch(signal: AbortSignal): AsyncIterable<InventoryDelta> {
    return this.#feed.watch(signal);
  }

  #follow(): void {
    if (this.#following) return;
    const { logger, settings } = this.#options;
    this.#following = followInventory({
      client: this.client,
      view: this.#view!,
      cache: this.#cache,
      feed: this.#feed,
      logger,
      signal: this.#stop.signal,
      maxWaitSeconds: settings.watchWaitSeconds,
    })
      .catch((error: unknown) => {
        if (this.#stop.signal.aborted) return;
        logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          'vSphere change feed failed',
        );
      })
      .finally(() => this.#feed.close());
  }

  /** Reads one VM again (after an action) and keeps the cache in step. */
  async readVm(id: string): Promise<DiscoveredVm> {
    const ref = new MoRef('VirtualMachine', id);
    const found = await new PropertyCollector(this.client).retrieveAll([
      objectsSpec(
        [ref],
        propertySpecs.filter((p) => p.type === 'VirtualMachine'),
      ),
    ]);
    const props = found[0]?.props;
    if (!props)
      throw new ZenithError('ZEN_NOT_FOUND', `no VM ${id} on this vCenter`, { externalId: id });
    this.#cache.put(ref, props);
    return this.#cache.toVm({ ref, props });
  }

  startVm(_id: string, _context: ActionContext): Promise<DiscoveredVm> {
    return unsupported('start');
  }
  stopVm(_id: string, _context: ActionContext): Promise<DiscoveredVm> {
    return unsupported('stop');
  }
  rebootVm(_id: string, _context: ActionContext): Promise<DiscoveredVm> {
    return unsupported('reboot');
  }
  suspendVm(_id: string, _context: ActionContext): Promise<DiscoveredVm> {
    return unsupported('suspend');
  }
  resumeVm(_id: string, _context: ActionContext): Promise<DiscoveredVm> {
    return unsupported('resume');
  }
  deleteVm(_id: string, _context: ActionContext): Promise<null> {
    return unsupported('delete');
  }
  migrateVm(
    _id: string,
    _target: string,
    _context: ActionContext,
    _options?: MigrateOptions,
  ): Promise<DiscoveredVm> {
    return unsupported('migrate');
  }
  createVm(_spec: VmSpec, _context: ActionContext): Promise<DiscoveredVm> {
    return unsupported('create');
  }

  async close(): Promise<void> {
    this.#stop.abort();
    this.#feed.close();
    await this.#client?.close().catch(() => undefined);
    await this.#following;
  }
}

async function unsupported(action: string): Promise<never> {
  throw new ZenithError('ZEN_UNSUPPORTED', `vsphere connections cannot ${action} VMs yet`, {
    action,
  });
}
