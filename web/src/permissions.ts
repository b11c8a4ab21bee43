/**
 * What the logged-in identity may do, to offer only the actions it may perform. The answer is the
 * server's own (GET /auth/me/permissions), so custom roles, groups and scoped role bindings are
 * followed: `can('vm.power', vmId)` holds when a binding on the VM, its host, cluster, datacenter
 * or a resource group holding any of them grants it. Pages ask once for the objects they show
 * (`usePermissions(ids)`), never once per row. The server still decides; a refusal shows its code.
 * A role binding changed during the session shows when the tab is looked at again (focus, or it
 * becomes visible) and at least every minute while it is: everything known is asked again at once.
 */
import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useMemo,
  useSyncExternalStore,
  type ReactNode,
} from 'react';
import type { Permission } from '../../src/api/permissions.ts';
import type { ApiError } from './api/api-error.ts';
import { ApiClient } from './api/client.ts';

export type { Permission };

/** The answer of GET /auth/me/permissions. */
export interface EffectivePermissions {
  global: Permission[];
  scoped: Array<{ scopeId: string; permissions: Permission[] }>;
  objects: Record<string, Permission[]>;
  missing: string[];
}

/** The server accepts at most this many objects per ask. */
const batchSize = 500;

/** How often a visible tab asks again what it may do. */
const refreshEveryMs = 60_000;

export class PermissionStore {
  #global = new Set<Permission>();
  #anywhere = new Set<Permission>();
  #objects = new Map<string, ReadonlySet<Permission>>();
  #pending = new Set<string>();
  #listeners = new Set<() => void>();
  #version = 0;
  loaded = false;

  constructor(private readonly client: ApiClient) {}

  /** The global and scoped grants; again after a change (e.g. when the stream reports bindings). */
  async load(): Promise<void> {
    const answer = await this.client.call<EffectivePermissions>('GET', '/auth/me/permissions');
    this.#global = new Set(answer.global);
    this.#anywhere = new Set([...answer.global, ...answer.scoped.flatMap((s) => s.permissions)]);
    this.#objects.clear();
    this.loaded = true;
    this.#changed();
  }

  /**
   * Asks again for everything known (the grants and each object asked about so far) and swaps it
   * in at once, so nothing offered flickers while the answers come.
   */
  async refresh(): Promise<void> {
    const ids = [...this.#objects.keys()];
    const answer = await this.client.call<EffectivePermissions>('GET', '/auth/me/permissions');
    const objects = new Map<string, ReadonlySet<Permission>>();
    for (let i = 0; i < ids.length; i += batchSize) {
      const batch = ids.slice(i, i + batchSize);
      const asked = await this.client.call<EffectivePermissions>(
        'GET',
        `/auth/me/permissions?objects=${batch.map(encodeURIComponent).join(',')}`,
      );
      for (const [id, held] of Object.entries(asked.objects)) objects.set(id, new Set(held));
      for (const id of asked.missing) objects.set(id, new Set());
    }
    this.#global = new Set(answer.global);
    this.#anywhere = new Set([...answer.global, ...answer.scoped.flatMap((s) => s.permissions)]);
    // Objects first asked about while this ran keep what they were told.
    for (const [id, held] of this.#objects) if (!objects.has(id)) objects.set(id, held);
    this.#objects = objects;
    this.loaded = true;
    this.#changed();
  }

  /** Learns what holds on these objects (those not known yet), in as few asks as possible. */
  async ensure(objectIds: Iterable<string>): Promise<void> {
    const unknown = [...new Set(objectIds)].filter(
      (id) => !this.#objects.has(id) && !this.#pending.has(id),
    );
    if (unknown.length === 0) return;
    for (const id of unknown) this.#pending.add(id);
    try {
      for (let i = 0; i < unknown.length; i += batchSize) {
        const batch = unknown.slice(i, i + batchSize);
        const answer = await this.client.call<EffectivePermissions>(
          'GET',
          `/auth/me/permissions?objects=${batch.map(encodeURIComponent).join(',')}`,
        );
        for (const [id, held] of Object.entries(answer.objects))
          this.#objects.set(id, new Set(held));
        for (const id of answer.missing) this.#objects.set(id, new Set());
      }
    } finally {
      for (const id of unknown) this.#pending.delete(id);
      this.#changed();
    }
  }

  /**
   * May the identity do this on the object (or, without one, on everything)? False until the
   * object's permissions are known: nothing is offered that might be refused.
   */
  can(permission: Permission, objectId?: string | null): boolean {
    if (this.#global.has(permission)) return true;
    if (!objectId) return false;
    return this.#objects.get(objectId)?.has(permission) ?? false;
  }

  /** Does some binding grant it somewhere (to decide whether a page or menu entry is worth showing)? */
  canAnywhere(permission: Permission): boolean {
    return this.#anywhere.has(permission);
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get version(): number {
    return this.#version;
  }

  #changed(): void {
    this.#version += 1;
    for (const listener of this.#listeners) listener();
  }
}

export const PermissionContext = createContext<PermissionStore | null>(null);

export interface Can {
  can: (permission: Permission, objectId?: string | null) => boolean;
  canAnywhere: (permission: Permission) => boolean;
  loaded: boolean;
}

/**
 * The permissions of the logged-in identity, re-rendering when they are learnt. Pass the ids of
 * the objects the page shows: they are asked about in one batch.
 */
export function usePermissions(objectIds: readonly string[] = []): Can {
  const store = useContext(PermissionContext);
  if (!store) throw new Error('usePermissions needs a PermissionContext provider');
  useSyncExternalStore(
    (listener) => store.subscribe(listener),
    () => store.version,
  );
  const key = objectIds.join(',');
  useEffect(() => {
    if (key) void store.ensure(key.split(',')).catch(() => undefined);
  }, [store, key]);
  return {
    can: (permission, objectId) => store.can(permission, objectId),
    canAnywhere: (permission) => store.canAnywhere(permission),
    loaded: store.loaded,
  };
}

/** Gives the pages below it the permissions of the session whose token it is given. */
export function PermissionProvider(props: {
  token: string;
  onUnauthorized: (error: ApiError) => void;
  children: ReactNode;
}) {
  const { token, onUnauthorized, children } = props;
  const store = useMemo(
    () => new PermissionStore(new ApiClient(token, onUnauthorized)),
    [token, onUnauthorized],
  );
  useEffect(() => {
    void store.load().catch(() => undefined);
    const refresh = () => {
      if (document.visibilityState === 'visible') void store.refresh().catch(() => undefined);
    };
    window.addEventListener('focus', refresh);
    document.addEventListener('visibilitychange', refresh);
    const timer = setInterval(refresh, refreshEveryMs);
    return () => {
      window.removeEventListener('focus', refresh);
      document.removeEventListener('visibilitychange', refresh);
      clearInterval(timer);
    };
  }, [store]);
  return createElement(PermissionContext, { value: store }, children);
}
