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
import { MoRef, type VimValue } from '../../protocols/vim/vim-values.js';
import { DeltaFeed } from '../delta-feed.js';
import type {
  ActionContext,
  Capability,
  CloneOptions,
  ReconfigureOptions,
  SnapshotInfo,
  DiscoveredVm,
  DiscoverySnapshot,
  DriverInfo,
  HypervisorDriver,
  InventoryDelta,
  MigrateOptions,
  VmMetrics,
  VmSpec,
} from '../driver.js';
import { vmPowerCapabilities } from '../driver.js';
import { customFieldNames, followInventory } from './inventory-feed.js';
import {
  InventoryCache,
  nonVmPropertySpecs,
  nonVmViewTypes,
  vmPaths,
  vmTriggerPaths,
} from './inventory-model.js';
import { caOf, type VsphereSettings } from './settings.js';
import { PerfCounters, toVmMetrics } from './vsphere-metrics.js';
import {
  rebootGuest,
  reconfigure,
  relocate,
  rename,
  shutdownGuest,
  vmTask,
  type ActionHost,
} from './vsphere-actions.js';
import {
  cloneVm,
  createSnapshot,
  createVm,
  deleteSnapshot,
  destroyVm,
  listSnapshots,
  revertSnapshot,
} from './vsphere-provisioning.js';

export interface VsphereDriverOptions {
  settings: VsphereSettings;
  password: string | null;
  clock: Clock;
  logger: Logger;
}

const capabilities: readonly Capability[] = [
  ...vmPowerCapabilities,
  'vm.migrate',
  'vm.relocateStorage',
  'vm.create',
  'vm.clone',
  'vm.snapshot',
  'vm.rename',
  'vm.reconfigure',
];

export class VsphereDriver implements HypervisorDriver {
  readonly info: DriverInfo = { type: 'vsphere', simulated: false, capabilities };
  readonly #options: VsphereDriverOptions;
  readonly #cache = new InventoryCache();
  readonly #feed = new DeltaFeed();
  readonly #stop = new AbortController();
  #client: VimClient | undefined;
  #perf: PerfCounters | undefined;
  #vmView: MoRef | undefined;
  #objectView: MoRef | undefined;
  #following: Promise<void> | undefined;
  #markSynced!: () => void;
  readonly #synced = new Promise<void>((resolve) => (this.#markSynced = resolve));

  constructor(options: VsphereDriverOptions) {
    this.#options = options;
  }

  /** The logged-in client (for actions). */
  get client(): VimClient {
    if (!this.#client)
      throw new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the vSphere connection is not open');
    return this.#client;
  }

  /**
   * A vCenter's instance UUID (the same however it is addressed); an ESXi has none and is known by
   * its address (host and port) instead.
   */
  peerIdentity(): string {
    const uuid = this.client.content.about.instanceUuid;
    if (uuid) return `vsphere:${uuid.toLowerCase()}`;
    const url = new URL(this.#options.settings.url);
    return `vsphere:${url.hostname.toLowerCase()}:${url.port || '443'}`;
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
    // Two views: the VMs, and everything else (the change feed follows them differently).
    const viewOf = async (type: string[]) => {
      const view = await this.client.invoke(
        'CreateContainerView',
        this.client.content.viewManager,
        {
          container: this.client.content.rootFolder,
          type,
          recursive: true,
        },
      );
      if (!(view instanceof MoRef))
        throw new ZenithError('VIM_PROTOCOL_ERROR', 'CreateContainerView answered no view');
      return view;
    };
    this.#vmView = await viewOf(['VirtualMachine']);
    this.#objectView = await viewOf(nonVmViewTypes);
  }

  async discover(): Promise<DiscoverySnapshot> {
    const client = this.client;
    const collector = new PropertyCollector(client);
    const fields = client.content.customFieldsManager;
    const [objects, fieldDefs] = await Promise.all([
      collector.retrieveAll(
        [
          containerViewSpec(this.#objectView!, nonVmPropertySpecs),
          containerViewSpec(this.#vmView!, [{ type: 'VirtualMachine', pathSet: vmPaths }]),
        ],
        { maxObjects: 5000 },
      ),
      fields ? collector.retrieveOne(fields, ['field']) : Promise.resolve(undefined),
    ]);
    this.#cache.clear();
    this.#cache.customFields = customFieldNames(fieldDefs?.get('field'));
    for (const object of objects) this.#cache.put(object.obj, object.props);
    this.#follow();
    return { objects: this.#cache.snapshot() };
  }

  /** Resolves once the change feed follows the inventory (after discover(): its first update set is in). */
  whenFollowing(): Promise<void> {
    return this.#synced;
  }

  watch(signal: AbortSignal): AsyncIterable<InventoryDelta> {
    return this.#feed.watch(signal);
  }

  #follow(): void {
    if (this.#following) return;
    const { logger, settings } = this.#options;
    this.#following = followInventory({
      client: this.client,
      vmView: this.#vmView!,
      objectView: this.#objectView!,
      cache: this.#cache,
      feed: this.#feed,
      logger,
      signal: this.#stop.signal,
      maxWaitSeconds: settings.watchWaitSeconds,
      onSynced: () => this.#markSynced(),
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

  /**
   * Reads one VM again after an action. When `expect` names the paths the action changed, it
   * first waits (a few seconds at most) until the change feed reports the same values for them
   * and has handed over every earlier change: the action's result is then applied after, never
   * before, a stale change from the feed. What was read then replaces the feed's copy, so a later
   * change from the feed carries it too (servers do not report every path: the simulator reports
   * no reconfiguration).
   */
  async readVm(id: string, expect: readonly string[] = []): Promise<DiscoveredVm> {
    const ref = new MoRef('VirtualMachine', id);
    const found = await new PropertyCollector(this.client).retrieveAll([
      objectsSpec([ref], [{ type: 'VirtualMachine', pathSet: vmPaths }]),
    ]);
    const props = found[0]?.props;
    if (!props)
      throw new ZenithError('ZEN_NOT_FOUND', `no VM ${id} on this vCenter`, { externalId: id });
    // Only the VM feed's trigger paths ever come through the feed (decision 19).
    await this.#feedCaughtUp(
      id,
      props,
      expect.filter((path) => vmTriggerPaths.includes(path)),
    );
    if (this.#following) this.#cache.put(ref, props);
    return this.#cache.toVm({ ref, props });
  }

  async #feedCaughtUp(
    id: string,
    props: Map<string, VimValue> | null,
    expect: readonly string[],
  ): Promise<void> {
    if (!this.#following || this.#stop.signal.aborted) return;
    const { clock } = this.#options;
    const deadline = clock.now() + 5000;
    const caughtUp = () => {
      const cached = this.#cache.get(id)?.props;
      if (!props) return !cached;
      return (
        cached !== undefined &&
        expect.every((path) => JSON.stringify(cached.get(path)) === JSON.stringify(props.get(path)))
      );
    };
    while (!(caughtUp() && this.#feed.backlog === 0) && clock.now() < deadline)
      await clock.sleep(20, this.#stop.signal).catch(() => undefined);
  }

  /** After a VM was destroyed: the feed has seen it leave. */
  vmGone(id: string): Promise<void> {
    return this.#feedCaughtUp(id, null, []);
  }

  get #actions(): ActionHost {
    return {
      client: this.client,
      cache: this.#cache,
      clock: this.#options.clock,
      readVm: (id, expect) => this.readVm(id, expect),
      vmGone: (id) => this.vmGone(id),
    };
  }

  startVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return vmTask(this.#actions, id, 'PowerOnVM_Task', {}, context);
  }

  /** force (the default): power off at once; force false: guest shutdown through VMware Tools. */
  stopVm(
    id: string,
    context: ActionContext,
    options: { force?: boolean } = {},
  ): Promise<DiscoveredVm> {
    if (options.force === false)
      return shutdownGuest(
        this.#actions,
        id,
        context,
        this.#options.settings.shutdownTimeoutSeconds * 1000,
      );
    return vmTask(this.#actions, id, 'PowerOffVM_Task', {}, context);
  }

  rebootVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return rebootGuest(this.#actions, id, context);
  }

  resetVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return vmTask(this.#actions, id, 'ResetVM_Task', {}, context);
  }

  suspendVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return vmTask(this.#actions, id, 'SuspendVM_Task', {}, context);
  }

  resumeVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return vmTask(this.#actions, id, 'PowerOnVM_Task', {}, context);
  }

  deleteVm(id: string, context: ActionContext): Promise<null> {
    return destroyVm(this.#actions, id, context);
  }

  /** RelocateVM_Task to another host (and datastore, when asked); a running VM moves live (vMotion). */
  migrateVm(
    id: string,
    target: string,
    context: ActionContext,
    options: MigrateOptions = {},
  ): Promise<DiscoveredVm> {
    const current = this.#cache.get(id);
    const onHost = (current?.props.get('runtime.host') as MoRef | undefined)?.value;
    return relocate(
      this.#actions,
      id,
      {
        ...(target !== onHost ? { hostId: target } : {}),
        ...(options.datastoreExternalId ? { datastoreId: options.datastoreExternalId } : {}),
      },
      context,
    );
  }

  createVm(spec: VmSpec, context: ActionContext): Promise<DiscoveredVm> {
    return createVm(this.#actions, spec, context);
  }

  cloneVm(id: string, options: CloneOptions, context: ActionContext): Promise<DiscoveredVm> {
    return cloneVm(this.#actions, id, options, context);
  }

  async listSnapshots(id: string): Promise<SnapshotInfo[]> {
    return (await listSnapshots(this.#actions, id)).map(({ ref: _ref, ...info }) => info);
  }

  createSnapshot(id: string, name: string, context: ActionContext) {
    return createSnapshot(this.#actions, id, name, context);
  }

  revertSnapshot(id: string, snapshotId: string, context: ActionContext): Promise<DiscoveredVm> {
    return revertSnapshot(this.#actions, id, snapshotId, context);
  }

  deleteSnapshot(id: string, snapshotId: string, context: ActionContext): Promise<DiscoveredVm> {
    return deleteSnapshot(this.#actions, id, snapshotId, context);
  }

  renameVm(id: string, name: string, context: ActionContext): Promise<DiscoveredVm> {
    return rename(this.#actions, id, name, context);
  }

  reconfigureVm(
    id: string,
    change: ReconfigureOptions,
    context: ActionContext,
  ): Promise<DiscoveredVm> {
    return reconfigure(this.#actions, id, change, context);
  }

  /** Realtime statistics of a running VM (null when it is not running); see vsphere-metrics.ts. */
  async vmMetrics(id: string): Promise<VmMetrics | null> {
    const vm = await this.readVm(id);
    if (vm.powerState !== 'running') return null;
    this.#perf ??= new PerfCounters(this.client);
    const series = await this.#perf.query(new MoRef('VirtualMachine', id));
    const memory = vm.facts['memory.bytes'];
    return toVmMetrics(
      series,
      await this.#perf.ids(),
      typeof memory === 'number' ? memory : 0,
      this.#options.clock.now(),
    );
  }

  async close(): Promise<void> {
    this.#stop.abort();
    this.#feed.close();
    await this.#client?.close().catch(() => undefined);
    await this.#following;
  }
}
