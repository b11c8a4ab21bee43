/**
 * The PropertyCollector: reading properties of many objects at once
 * (RetrievePropertiesEx, paged with ContinueRetrievePropertiesEx) and
 * following their changes (CreateFilter + WaitForUpdatesEx with version
 * tokens). Replies are walked directly, decoding only the property values.
 */
import { ZenithError } from '../../core/errors.js';
import { faultError } from './soap-envelope.js';
import type { VimClient } from './vim-client.js';
import { decodeValue, MoRef, obj, str, type VimArgObject, type VimValue } from './vim-values.js';
import { child, type XmlElement } from './xml-tree.js';

export interface ObjectContent {
  obj: MoRef;
  /** Property path → value. */
  props: Map<string, VimValue>;
  /** Paths the server could not read, with its fault type. */
  missing: Array<{ path: string; faultType: string }>;
}

export type PropertyChangeOp = 'add' | 'remove' | 'assign' | 'indirectRemove';

export interface ObjectUpdate {
  kind: 'enter' | 'modify' | 'leave';
  obj: MoRef;
  changes: Array<{ name: string; op: PropertyChangeOp; val: VimValue | undefined }>;
}

export interface UpdateSet {
  version: string;
  truncated: boolean;
  /** Updates of every filter of the collector, in order. */
  objectUpdates: ObjectUpdate[];
}

export interface PropertySpec {
  type: string;
  pathSet: string[];
}

/** A filter spec over everything a ContainerView sees. */
export function containerViewSpec(view: MoRef, propSet: PropertySpec[]): VimArgObject {
  return {
    propSet: propSet.map((p) => ({ type: p.type, all: false, pathSet: p.pathSet })),
    objectSet: [
      {
        obj: view,
        skip: true,
        selectSet: [
          {
            $type: 'TraversalSpec',
            name: 'view',
            type: 'ContainerView',
            path: 'view',
            skip: false,
          },
        ],
      },
    ],
  };
}

/**
 * A filter spec over the given objects themselves. With `reportMissing`, an object that is gone
 * is left out of the answer instead of failing the whole call with ManagedObjectNotFound.
 */
export function objectsSpec(
  objects: MoRef[],
  propSet: PropertySpec[],
  options: { reportMissing?: boolean } = {},
): VimArgObject {
  return {
    propSet: propSet.map((p) => ({ type: p.type, all: false, pathSet: p.pathSet })),
    objectSet: objects.map((o) => ({ obj: o, skip: false })),
    ...(options.reportMissing ? { reportMissingObjectsInResults: true } : {}),
  };
}

export class PropertyCollector {
  constructor(
    private readonly client: VimClient,
    readonly self: MoRef = client.content.propertyCollector,
  ) {}

  /**
   * Every object the spec selects, page by page; `maxObjects` is a hint the server may ignore.
   * Objects are decoded as the reply streams in (each ObjectContent alone, then dropped from the
   * tree), so a large page is never held as a tree.
   */
  async *retrievePages(
    specSet: VimArgObject[],
    options: { maxObjects?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<ObjectContent[]> {
    let page: ObjectContent[] = [];
    const call = {
      ...(options.signal ? { signal: options.signal } : {}),
      // Envelope > Body > …Response > returnval > objects
      emit: {
        depth: 4,
        name: 'objects',
        onElement: (e: XmlElement) => page.push(decodeObjectContent(e)),
      },
    };
    let result = await this.client.invokeRaw(
      'RetrievePropertiesEx',
      this.self,
      { specSet, options: options.maxObjects ? { maxObjects: options.maxObjects } : {} },
      call,
    );
    for (;;) {
      // A transport that does not stream leaves the objects in the tree.
      const rest = decodeRetrieveResult(result[0]);
      const objects = page.concat(rest.objects);
      page = [];
      if (!rest.token) {
        yield objects;
        return;
      }
      // The next page is asked for before this one is handed over (pipelined).
      const next = this.client.invokeRaw(
        'ContinueRetrievePropertiesEx',
        this.self,
        { token: rest.token },
        call,
      );
      next.catch(() => undefined);
      yield objects;
      result = await next;
    }
  }

  async retrieveAll(
    specSet: VimArgObject[],
    options: { maxObjects?: number; signal?: AbortSignal } = {},
  ): Promise<ObjectContent[]> {
    const all: ObjectContent[] = [];
    for await (const page of this.retrievePages(specSet, options))
      for (const item of page) all.push(item);
    return all;
  }

  /** The properties of one object (undefined when it is gone). */
  async retrieveOne(object: MoRef, pathSet: string[]): Promise<Map<string, VimValue> | undefined> {
    const found = await this.retrieveAll([objectsSpec([object], [{ type: object.type, pathSet }])]);
    return found[0]?.props;
  }

  async createFilter(spec: VimArgObject, partialUpdates = false): Promise<MoRef> {
    const value = await this.client.invoke('CreateFilter', this.self, { spec, partialUpdates });
    if (!(value instanceof MoRef))
      throw new ZenithError('VIM_PROTOCOL_ERROR', 'CreateFilter answered no filter');
    return value;
  }

  async destroyFilter(filter: MoRef): Promise<void> {
    await this.client.invoke('DestroyPropertyFilter', filter);
  }

  /**
   * Changes since `version` ('' for the initial state of every filter); null when
   * `maxWaitSeconds` passed with no change.
   */
  async waitForUpdates(
    version: string,
    options: { maxWaitSeconds?: number; maxObjectUpdates?: number; signal?: AbortSignal } = {},
  ): Promise<UpdateSet | null> {
    const waitOptions: VimArgObject = {
      ...(options.maxWaitSeconds !== undefined ? { maxWaitSeconds: options.maxWaitSeconds } : {}),
      ...(options.maxObjectUpdates !== undefined
        ? { maxObjectUpdates: options.maxObjectUpdates }
        : {}),
    };
    const result = await this.client.invokeRaw(
      'WaitForUpdatesEx',
      this.self,
      { version, options: waitOptions },
      options.signal ? { signal: options.signal } : {},
    );
    return result[0] ? decodeUpdateSet(result[0]) : null;
  }

  async cancelWaitForUpdates(): Promise<void> {
    await this.client.invoke('CancelWaitForUpdates', this.self);
  }

  /** A collector of this session's own (filters and waits do not disturb other users of the default one). */
  async createCollector(): Promise<PropertyCollector> {
    const value = await this.client.invoke('CreatePropertyCollector', this.self);
    if (!(value instanceof MoRef))
      throw new ZenithError('VIM_PROTOCOL_ERROR', 'CreatePropertyCollector answered no collector');
    return new PropertyCollector(this.client, value);
  }

  async destroy(): Promise<void> {
    await this.client.invoke('DestroyPropertyCollector', this.self);
  }
}

export function decodeRetrieveResult(element: XmlElement | undefined): {
  token: string | undefined;
  objects: ObjectContent[];
} {
  if (!element) return { token: undefined, objects: [] };
  let token: string | undefined;
  const objects: ObjectContent[] = [];
  for (const item of element.children) {
    if (item.name === 'token') token = item.text;
    else if (item.name === 'objects') objects.push(decodeObjectContent(item));
  }
  return { token, objects };
}

function decodeObjectContent(element: XmlElement): ObjectContent {
  let object: MoRef | undefined;
  const props = new Map<string, VimValue>();
  const missing: ObjectContent['missing'] = [];
  for (const item of element.children) {
    if (item.name === 'obj') object = new MoRef(item.attrs.type ?? '', item.text.trim());
    else if (item.name === 'propSet') {
      const name = child(item, 'name')?.text;
      const val = child(item, 'val');
      if (name !== undefined && val) props.set(name, decodeValue(val));
    } else if (item.name === 'missingSet') {
      const path = child(item, 'path')?.text ?? '';
      const fault = child(item, 'fault');
      const type = fault ? child(fault, 'fault')?.xsiType?.local : undefined;
      missing.push({ path, faultType: type ?? 'unknown' });
    }
  }
  if (!object) throw new ZenithError('VIM_PROTOCOL_ERROR', 'an ObjectContent has no obj');
  return { obj: object, props, missing };
}

export function decodeUpdateSet(element: XmlElement): UpdateSet {
  let version = '';
  let truncated = false;
  const objectUpdates: ObjectUpdate[] = [];
  for (const item of element.children) {
    if (item.name === 'version') version = item.text;
    else if (item.name === 'truncated') truncated = item.text === 'true';
    else if (item.name === 'filterSet')
      for (const update of item.children)
        if (update.name === 'objectSet') objectUpdates.push(decodeObjectUpdate(update));
  }
  return { version, truncated, objectUpdates };
}

function decodeObjectUpdate(element: XmlElement): ObjectUpdate {
  let kind: ObjectUpdate['kind'] = 'modify';
  let object: MoRef | undefined;
  const changes: ObjectUpdate['changes'] = [];
  for (const item of element.children) {
    if (item.name === 'kind') {
      const text = item.text.trim();
      if (text !== 'enter' && text !== 'modify' && text !== 'leave')
        throw new ZenithError('VIM_PROTOCOL_ERROR', `unknown object update kind '${text}'`);
      kind = text;
    } else if (item.name === 'obj') object = new MoRef(item.attrs.type ?? '', item.text.trim());
    else if (item.name === 'changeSet') {
      const name = child(item, 'name')?.text ?? '';
      const op = (child(item, 'op')?.text.trim() ?? 'assign') as PropertyChangeOp;
      const val = child(item, 'val');
      changes.push({ name, op, val: val ? decodeValue(val) : undefined });
    }
  }
  if (!object) throw new ZenithError('VIM_PROTOCOL_ERROR', 'an ObjectUpdate has no obj');
  return { kind, obj: object, changes };
}

/** A LocalizedMethodFault (task errors) as a coded error. */
export function localizedFaultError(value: VimValue | undefined, method: string): ZenithError {
  const fault = obj(value);
  const inner = obj(fault?.fault);
  const type = str(inner?.$type) ?? 'MethodFault';
  return faultError(type, str(fault?.localizedMessage) ?? type, inner ?? {}, method);
}
