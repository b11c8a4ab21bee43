/**
 * Follows a vSphere inventory after its first full read: a PropertyCollector
 * of the driver's own with one filter over the container view (and one over
 * the custom attribute names), read with WaitForUpdatesEx and its version
 * tokens. The first update set is the whole state as of the filter's
 * creation; whatever differs from the discovery (changes made in between) is
 * pushed, so nothing is lost. After that only changed objects are read.
 * Any failure ends the feed; the connection then reconnects and re-reads.
 */
import type { Logger } from '../../core/logger.js';
import {
  containerViewSpec,
  objectsSpec,
  PropertyCollector,
  type ObjectUpdate,
} from '../../protocols/vim/property-collector.js';
import type { VimClient } from '../../protocols/vim/vim-client.js';
import { list, obj, str, type MoRef, type VimValue } from '../../protocols/vim/vim-values.js';
import type { DeltaFeed } from '../delta-feed.js';
import type { InventoryDelta } from '../driver.js';
import { applyChange, propertySpecs, type InventoryCache } from './inventory-model.js';

export interface FeedOptions {
  client: VimClient;
  view: MoRef;
  cache: InventoryCache;
  feed: DeltaFeed;
  logger: Logger;
  signal: AbortSignal;
  /** How long one WaitForUpdatesEx may wait for a change (seconds). */
  maxWaitSeconds?: number;
  /** Called once the filter's first (whole) update set has been compared with discovery. */
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

export async function followInventory(options: FeedOptions): Promise<void> {
  const { client, view, cache, feed, signal } = options;
  const collector = await new PropertyCollector(client).createCollector();
  try {
    await collector.createFilter(containerViewSpec(view, propertySpecs));
    const fields = client.content.customFieldsManager;
    if (fields)
      await collector.createFilter(
        objectsSpec([fields], [{ type: 'CustomFieldsManager', pathSet: ['field'] }]),
      );
    let version = '';
    let initial = true;
    const seen = new Set<string>();
    const dirty = new Set<string>();
    while (!signal.aborted) {
      const set = await collector.waitForUpdates(version, {
        maxWaitSeconds: options.maxWaitSeconds ?? 30,
        signal,
      });
      if (!set) continue;
      version = set.version;
      const removed: InventoryDelta[] = [];
      for (const update of set.objectUpdates) {
        if (update.obj.type === 'CustomFieldsManager') {
          const field = update.changes.find((c) => c.name === 'field');
          if (field) cache.customFields = customFieldNames(field.val);
          continue;
        }
        if (initial) seen.add(update.obj.value);
        const gone = apply(cache, update, initial, dirty);
        if (gone) removed.push(gone);
      }
      if (initial && !set.truncated) {
        // The first update set is complete: what discovery saw and the filter does not is gone.
        for (const [value, object] of [...cache.objects]) {
          if (seen.has(value)) continue;
          cache.objects.delete(value);
          const discovered = cache.toDiscovered(object);
          if (discovered)
            removed.push({ type: 'remove', kind: discovered.kind, externalId: value });
        }
        initial = false;
        seen.clear();
        options.onSynced?.();
      }
      if (initial) continue;
      for (const value of dirty) {
        const object = cache.get(value);
        const discovered = object ? cache.toDiscovered(object) : null;
        if (discovered) feed.push({ type: 'upsert', object: discovered });
      }
      dirty.clear();
      for (const delta of removed) feed.push(delta);
    }
  } finally {
    if (!signal.aborted) await collector.destroy().catch(() => undefined);
  }
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
    const object = cache.get(value);
    cache.objects.delete(value);
    dirty.delete(value);
    const discovered = object ? cache.toDiscovered(object) : null;
    return discovered ? { type: 'remove', kind: discovered.kind, externalId: value } : undefined;
  }
  const existing = cache.get(value);
  if (update.kind === 'enter' && initial && existing) {
    // The filter's first report of an object discovery already read: a change only if a value differs.
    const props = new Map<string, VimValue>();
    for (const change of update.changes) applyChange(props, change);
    if (!sameProps(existing.props, props)) {
      cache.put(update.obj, props);
      dirty.add(value);
    }
    return undefined;
  }
  const props = update.kind === 'enter' || !existing ? new Map<string, VimValue>() : existing.props;
  for (const change of update.changes) applyChange(props, change);
  cache.put(update.obj, props);
  dirty.add(value);
  // A renamed host, datastore, network or pool shows in the facts of VMs that name it.
  if (update.obj.type !== 'VirtualMachine' && update.changes.some((c) => c.name === 'name'))
    for (const object of cache.objects.values())
      if (object.ref.type === 'VirtualMachine' && mentions(object.props, value))
        dirty.add(object.ref.value);
  return undefined;
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

function sameProps(a: Map<string, VimValue>, b: Map<string, VimValue>): boolean {
  if (a.size !== b.size) return false;
  for (const [key, value] of a)
    if (JSON.stringify(value) !== JSON.stringify(b.get(key))) return false;
  return true;
}
