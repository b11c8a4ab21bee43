/**
 * Follows a vSphere inventory after its first full read, with two
 * PropertyCollectors of the driver's own, each read with WaitForUpdatesEx and
 * its version tokens (decision 19):
 * - the VM feed: one filter over a view of the VMs alone, on the few paths
 *   that must show within a second (`vmTriggerPaths`); a VM reported changed
 *   (or new) is read again, alone, on every path discovery reads;
 * - the object feed: one filter over a view of everything else, on every
 *   path, and one over the custom attribute names.
 * A server that re-evaluates a filter per change (govmomi's simulator does)
 * then pays for four paths of each VM instead of twenty, and the objects that
 * are not VMs cost it little. Each feed's first update set is the whole state
 * as of its filter's creation; what differs from discovery (changes made in
 * between) is pushed, so nothing is lost. Any failure ends the feed; the
 * connection then reconnects and re-reads.
 */
import type { Logger } from '../../core/logger.js';
import {
  containerViewSpec,
  objectsSpec,
  PropertyCollector,
  type ObjectUpdate,
  type UpdateSet,
} from '../../protocols/vim/property-collector.js';
import type { VimClient } from '../../protocols/vim/vim-client.js';
import { list, MoRef, obj, str, type VimValue } from '../../protocols/vim/vim-values.js';
import type { DeltaFeed } from '../delta-feed.js';
import type { InventoryDelta } from '../driver.js';
import {
  applyChange,
  nonVmPropertySpecs,
  vmPaths,
  vmTriggerPaths,
  type InventoryCache,
} from './inventory-model.js';
import { changedOverrides } from './vsphere-ha.js';

export interface FeedOptions {
  client: VimClient;
  /** A container view of the VMs alone. */
  vmView: MoRef;
  /** A container view of every other type Zenith reads. */
  objectView: MoRef;
  cache: InventoryCache;
  feed: DeltaFeed;
  logger: Logger;
  signal: AbortSignal;
  /** How long one WaitForUpdatesEx may wait for a change (seconds). */
  maxWaitSeconds?: number;
  /** Called once both feeds' first (whole) update sets have been compared with discovery. */
  onSynced?: () => void;
}

/** Reads the custom attribute definitions (key → name). */
export function customFieldNames(value: VimValue | undefined): Map<string, string> {
  const names = new Map<string, string>();
  for (const item of list(value)) {
    const field = obj(item);
    const key = str(field?.key);
    const name = str(field?.name);
    if (key !== undefined && name !== undefined) names.set(key, name);
  }
  return names;
}

/** One feed's handling of an update set; answers once it has pushed what it changed. */
type UpdateHandler = (set: UpdateSet, initial: boolean) => Promise<void>;

export async function followInventory(options: FeedOptions): Promise<void> {
  const { client, signal } = options;
  const root = new PropertyCollector(client);
  const collectors: PropertyCollector[] = [];
  // One feed failing ends the other.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener('abort', onAbort);
  try {
    const vmCollector = await root.createCollector();
    collectors.push(vmCollector);
    const objectCollector = await root.createCollector();
    collectors.push(objectCollector);
    await vmCollector.createFilter(
      containerViewSpec(options.vmView, [{ type: 'VirtualMachine', pathSet: vmTriggerPaths }]),
    );
    await objectCollector.createFilter(containerViewSpec(options.objectView, nonVmPropertySpecs));
    const fields = client.content.customFieldsManager;
    if (fields)
      await objectCollector.createFilter(
        objectsSpec([fields], [{ type: 'CustomFieldsManager', pathSet: ['field'] }]),
      );
    let unsynced = 2;
    const synced = () => {
      if (--unsynced === 0) options.onSynced?.();
    };
    const results = await Promise.allSettled(
      [
        follow(vmCollector, vmHandler(options), synced, options, stop.signal),
        follow(objectCollector, objectHandler(options), synced, options, stop.signal),
      ].map((feed) =>
        feed.catch((error: unknown) => {
          stop.abort();
          throw error;
        }),
      ),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed && !signal.aborted) throw failed.reason;
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (!signal.aborted)
      for (const collector of collectors) await collector.destroy().catch(() => undefined);
  }
}

async function follow(
  collector: PropertyCollector,
  handle: UpdateHandler,
  onSynced: () => void,
  options: FeedOptions,
  signal: AbortSignal,
): Promise<void> {
  let version = '';
  let initial = true;
  while (!signal.aborted) {
    const set = await collector.waitForUpdates(version, {
      maxWaitSeconds: options.maxWaitSeconds ?? 30,
      signal,
    });
    if (!set) continue;
    version = set.version;
    await handle(set, initial);
    if (initial && !set.truncated) {
      initial = false;
      onSynced();
    }
  }
}

/**
 * The VM feed: trigger paths only. A VM whose trigger paths changed, or that is new, is read again
 * alone (all VMs of one update set in one call), and that read replaces its cached properties.
 */
function vmHandler(options: FeedOptions): UpdateHandler {
  const { cache, feed, client } = options;
  const seen = new Set<string>();
  const toRead = new Set<string>();
  return async (set, initial) => {
    const removed: InventoryDelta[] = [];
    for (const update of set.objectUpdates) {
      if (update.obj.type !== 'VirtualMachine') continue;
      const value = update.obj.value;
      if (update.kind === 'leave') {
        toRead.delete(value);
        const gone = leave(cache, value);
        if (gone) removed.push(gone);
        continue;
      }
      const existing = cache.get(value);
      if (initial) {
        seen.add(value);
        // The filter's first report of a VM discovery already read: read again only if a trigger differs.
        const props = new Map<string, VimValue>();
        for (const change of update.changes) applyChange(props, change);
        if (!existing || !samePaths(existing.props, props, vmTriggerPaths)) toRead.add(value);
        continue;
      }
      if (existing) for (const change of update.changes) applyChange(existing.props, change);
      toRead.add(value);
    }
    if (initial && !set.truncated) {
      // The first update set is complete: a VM discovery saw and the filter does not is gone.
      for (const [value, object] of [...cache.objects])
        if (object.ref.type === 'VirtualMachine' && !seen.has(value)) {
          const gone = leave(cache, value);
          if (gone) removed.push(gone);
        }
      seen.clear();
    } else if (initial) return;
    if (toRead.size > 0) {
      const refs = [...toRead].map((value) => new MoRef('VirtualMachine', value));
      toRead.clear();
      const found = await new PropertyCollector(client).retrieveAll([
        objectsSpec(refs, [{ type: 'VirtualMachine', pathSet: vmPaths }], { reportMissing: true }),
      ]);
      // A VM gone meanwhile is left out here; its leave is on its way.
      for (const object of found) {
        cache.put(object.obj, object.props);
        const discovered = cache.toDiscovered({ ref: object.obj, props: object.props });
        if (discovered) feed.push({ type: 'upsert', object: discovered });
      }
    }
    for (const delta of removed) feed.push(delta);
  };
}

/** The object feed: everything but VMs, every path, and the custom attribute names. */
function objectHandler(options: FeedOptions): UpdateHandler {
  const { cache, feed } = options;
  const seen = new Set<string>();
  const dirty = new Set<string>();
  return async (set, initial) => {
    const removed: InventoryDelta[] = [];
    for (const update of set.objectUpdates) {
      if (update.obj.type === 'CustomFieldsManager') {
        const field = update.changes.find((c) => c.name === 'field');
        if (field) cache.customFields = customFieldNames(field.val);
        continue;
      }
      if (update.obj.type === 'VirtualMachine') continue;
      if (initial) seen.add(update.obj.value);
      const gone = apply(cache, update, initial, dirty);
      if (gone) removed.push(gone);
    }
    if (initial && !set.truncated) {
      for (const [value, object] of [...cache.objects]) {
        if (object.ref.type === 'VirtualMachine' || seen.has(value)) continue;
        const gone = leave(cache, value);
        if (gone) removed.push(gone);
      }
      seen.clear();
    } else if (initial) return;
    for (const value of dirty) {
      const object = cache.get(value);
      const discovered = object ? cache.toDiscovered(object) : null;
      if (discovered) feed.push({ type: 'upsert', object: discovered });
    }
    dirty.clear();
    for (const delta of removed) feed.push(delta);
  };
}

/** Drops an object from the cache; answers the removal to push. */
function leave(cache: InventoryCache, value: string): InventoryDelta | undefined {
  const object = cache.get(value);
  cache.objects.delete(value);
  const discovered = object ? cache.toDiscovered(object) : null;
  return discovered ? { type: 'remove', kind: discovered.kind, externalId: value } : undefined;
}

/** Applies one object update to the cache; answers the removal to push for a leave. */
function apply(
  cache: InventoryCache,
  update: ObjectUpdate,
  initial: boolean,
  dirty: Set<string>,
): InventoryDelta | undefined {
  const value = update.obj.value;
  if (update.kind === 'leave') {
    dirty.delete(value);
    return leave(cache, value);
  }
  const existing = cache.get(value);
  if (update.kind === 'enter' && initial && existing) {
    // The filter's first report of an object discovery already read: a change only if a value differs.
    const props = new Map<string, VimValue>();
    for (const change of update.changes) applyChange(props, change);
    if (
      !samePaths(existing.props, props, [...new Set([...existing.props.keys(), ...props.keys()])])
    ) {
      markOverridden(cache, existing.props.get('configurationEx'), props, dirty);
      cache.put(update.obj, props);
      dirty.add(value);
    }
    return undefined;
  }
  const before = existing?.props.get('configurationEx');
  const props = update.kind === 'enter' || !existing ? new Map<string, VimValue>() : existing.props;
  for (const change of update.changes) applyChange(props, change);
  markOverridden(cache, before, props, dirty);
  cache.put(update.obj, props);
  dirty.add(value);
  // A renamed host, datastore, network or pool shows in the facts of VMs that name it.
  if (update.changes.some((c) => c.name === 'name'))
    for (const object of cache.objects.values())
      if (object.ref.type === 'VirtualMachine' && mentions(object.props, value))
        dirty.add(object.ref.value);
  return undefined;
}

/** A cluster's changed VM HA overrides show in the facts of those VMs. */
function markOverridden(
  cache: InventoryCache,
  before: VimValue | undefined,
  props: Map<string, VimValue>,
  dirty: Set<string>,
): void {
  const after = props.get('configurationEx');
  if (before === after) return;
  for (const vm of changedOverrides(before, after)) if (cache.get(vm)) dirty.add(vm);
}

function mentions(props: Map<string, VimValue>, value: string): boolean {
  for (const key of ['datastore', 'network', 'resourcePool'])
    if (
      list(props.get(key)).some(
        (item) => typeof item === 'object' && 'value' in item && item.value === value,
      )
    )
      return true;
  return false;
}

function samePaths(
  a: Map<string, VimValue>,
  b: Map<string, VimValue>,
  paths: readonly string[],
): boolean {
  return paths.every((path) => JSON.stringify(a.get(path)) === JSON.stringify(b.get(path)));
}
