/**
 * Connections to hypervisors and managers. Each connection is a service
 * identity of its own, runs one driver, feeds its discovery and watch stream
 * into the inventory, and reconnects with backoff when the peer goes away.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Logger } from '../../core/logger.js';
import type { SecretBox } from '../../core/secret-box.js';
import { facetOf, type HypervisorDriver } from '../../hypervisors/driver.js';
import type { AgentLink } from '../../protocols/agent-channel/agent-link.js';
import type { DriverRegistry } from '../../hypervisors/registry.js';
import type { ConnectionsTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { EventBus } from '../events/event-bus.js';
import type { IdentityService } from '../identity/identity-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import { claimPeer, connectionOfPeer, probePeer, refuseTakenPeer } from './connection-peer.js';
import { refuseTakenName, rowsByName } from '../../store/rows.js';

export type ConnectionState = 'connecting' | 'connected' | 'disconnected';

export interface Connection {
  id: string;
  name: string;
  type: string;
  simulated: boolean;
  settings: Record<string, unknown>;
  identityId: string;
  state: ConnectionState;
  lastError: string | null;
  lastSyncAt: number | null;
  capabilities: string[];
  createdAt: number;
}

/** What a connection could do when it last answered (kept while it is down). */
export interface KnownAbilities {
  capabilities: readonly string[];
  /** Its migration facet's protocol, if it has one. */
  migrationProtocol: string | null;
  /** It reports how long its one host has been silent (high availability watches it by that). */
  liveness: boolean;
}

interface Running {
  type: string;
  driver: HypervisorDriver | undefined;
  /** What its driver could do the last time it connected. */
  known: KnownAbilities | undefined;
  abort: AbortController;
  state: ConnectionState;
  lastError: string | null;
  lastSyncAt: number | null;
  firstSync: Promise<void>;
  loop: Promise<void>;
  /** Cuts the backoff wait short (the peer is back). */
  nudge: AbortController;
}

const connectionName = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;

export class ConnectionService {
  readonly #running = new Map<string, Running>();
  readonly #knownByType = new Map<string, KnownAbilities>();

  constructor(
    private readonly deps: {
      store: Store;
      registry: DriverRegistry;
      inventory: InventoryService;
      identities: IdentityService;
      events: EventBus;
      secrets: SecretBox;
      clock: Clock;
      logger: Logger;
      stateDir: string;
      agentLink?: (agentId: string) => AgentLink | undefined;
    },
  ) {}

  /** Starts every stored connection; resolves when each has synced once or failed. */
  async startAll(timeoutMs = 30_000): Promise<void> {
    const rows = await this.deps.store.db.selectFrom('connections').selectAll().execute();
    for (const row of rows) this.#start(row);
    await Promise.all(
      [...this.#running.values()].map((r) => this.#waitAtMost(r.firstSync, timeoutMs)),
    );
  }

  async add(
    input: {
      name: string;
      type: string;
      settings?: Record<string, unknown>;
      secret?: string | null;
    },
    options: { waitForSync?: boolean } = {},
  ): Promise<Connection> {
    if (!connectionName.test(input.name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${input.name}' is not a valid connection name (letters, digits, . _ -, at most 64)`,
        { name: input.name },
      );
    const family = this.deps.registry.get(input.type);
    const settings = family.validate(input.settings ?? {});
    await this.#refuseTakenName(input.name);
    // Who is behind these settings: a hypervisor connected already is refused before anything is saved.
    const peer = family.identifiesPeer
      ? await probePeer(family, settings, input.secret ?? null, {
          connectionId: 'probe',
          clock: this.deps.clock,
          logger: this.deps.logger,
          stateDir: join(this.deps.stateDir, 'connection-probe'),
        })
      : null;
    if (peer) await refuseTakenPeer(this.deps.store.db, peer);
    // The connection acts as an identity of its own (what it changes is attributed to it),
    // named after its id so that a removed connection's name can be used again.
    const now = this.deps.clock.now();
    const id = newId('connection', now);
    const identity = await this.deps.identities.createServiceIdentity({
      name: `conn-${id.slice('conn_'.length).toLowerCase()}`,
      role: 'operator',
      displayName: `connection ${input.name}`,
    });
    const row: ConnectionsTable = {
      id,
      name: input.name,
      type: family.type,
      settings: JSON.stringify(settings),
      secret: input.secret ? this.deps.secrets.seal(input.secret) : null,
      identity_id: identity.id,
      state: 'connecting',
      last_error: null,
      last_sync_at: null,
      created_at: now,
      peer_id: peer,
    };
    try {
      await this.deps.store.db.insertInto('connections').values(row).execute();
    } catch (error) {
      // A concurrent add took the name or the peer (both unique) first: say which, leave nothing.
      await this.deps.identities.remove(identity.id).catch(() => undefined);
      await this.#refuseTakenName(input.name);
      if (peer) await refuseTakenPeer(this.deps.store.db, peer);
      throw error;
    }
    const running = this.#start(row);
    if (options.waitForSync !== false) await this.#waitAtMost(running.firstSync, 30_000);
    return this.get(row.id);
  }

  /** Tries a connection's settings without saving anything: connects and discovers once. */
  async test(input: {
    type: string;
    settings?: Record<string, unknown>;
    secret?: string | null;
  }): Promise<{
    ok: true;
    objects: Record<string, number>;
    durationMs: number;
    /** The connection that reaches this hypervisor already (adding these settings would be refused). */
    connectedAs: { id: string; name: string } | null;
  }> {
    const family = this.deps.registry.get(input.type);
    const settings = family.validate(input.settings ?? {});
    const started = performance.now();
    const driver = family.create(settings, input.secret ?? null, {
      connectionId: 'test',
      clock: this.deps.clock,
      logger: this.deps.logger,
      stateDir: join(this.deps.stateDir, 'connection-test'),
    });
    try {
      await driver.connect();
      const snapshot = await driver.discover();
      const objects: Record<string, number> = {};
      for (const object of snapshot.objects) objects[object.kind] = (objects[object.kind] ?? 0) + 1;
      const peer = driver.peerIdentity?.();
      const connectedAs = peer ? await connectionOfPeer(this.deps.store.db, peer) : undefined;
      return {
        ok: true,
        objects,
        durationMs: Math.round(performance.now() - started),
        connectedAs: connectedAs ? { id: connectedAs.id, name: connectedAs.name } : null,
      };
    } finally {
      await driver.close();
    }
  }

  async list(): Promise<Connection[]> {
    const rows = await rowsByName(this.deps.store.db, 'connections');
    return rows.map((row) => this.#view(row));
  }

  async get(idOrName: string): Promise<Connection> {
    const row = await this.deps.store.db
      .selectFrom('connections')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', idOrName), eb('name', '=', idOrName)]))
      .executeTakeFirst();
    if (!row)
      throw new ZenithError('ZEN_NOT_FOUND', `no connection '${idOrName}'`, {
        connection: idOrName,
      });
    return this.#view(row);
  }

  async remove(idOrName: string): Promise<Connection> {
    const connection = await this.get(idOrName);
    await this.#stop(connection.id);
    await this.deps.inventory.markConnectionGone(connection.id);
    await this.deps.store.db.deleteFrom('connections').where('id', '=', connection.id).execute();
    await this.deps.identities.update(connection.identityId, { disabled: true });
    await this.deps.events.publish([
      { type: 'connection.removed', objectId: connection.id, data: { name: connection.name } },
    ]);
    return connection;
  }

  /**
   * Gives a connection new settings and restarts it with them: a host agent enrolled again takes
   * over the connection of the agent it replaces (same host, same objects).
   */
  async rebind(idOrName: string, settings: Record<string, unknown>): Promise<Connection> {
    const connection = await this.get(idOrName);
    const valid = this.deps.registry.get(connection.type).validate(settings);
    await this.#stop(connection.id);
    await this.deps.store.db
      .updateTable('connections')
      .set({ settings: JSON.stringify(valid), state: 'connecting', last_error: null })
      .where('id', '=', connection.id)
      .execute();
    const row = await this.deps.store.db
      .selectFrom('connections')
      .selectAll()
      .where('id', '=', connection.id)
      .executeTakeFirstOrThrow();
    this.#start(row);
    return this.get(connection.id);
  }

  /** Re-reads the whole inventory of a connection now. */
  async refresh(idOrName: string): Promise<Connection> {
    const connection = await this.get(idOrName);
    const driver = this.driver(connection.id);
    const snapshot = await driver.discover();
    await this.deps.inventory.applySnapshot(connection.id, snapshot.objects);
    await this.#setState(connection.id, 'connected', null, this.deps.clock.now());
    return this.get(connection.id);
  }

  /** The live driver of a connection, or ZEN_CONNECTION_DISCONNECTED. */
  driver(connectionId: string): HypervisorDriver {
    const running = this.#running.get(connectionId);
    if (!running?.driver || running.state !== 'connected') {
      throw new ZenithError(
        'ZEN_CONNECTION_DISCONNECTED',
        'the connection that owns this object is not connected',
        { connectionId, state: running?.state ?? 'stopped' },
      );
    }
    return running.driver;
  }

  /**
   * What a connection could do when it last answered, also while it is down (a host powered off by
   * power management): what it did then, or else what another connection of its type does.
   */
  knownAbilities(connectionId: string): KnownAbilities | undefined {
    const running = this.#running.get(connectionId);
    return running && (running.known ?? this.#knownByType.get(running.type));
  }

  /** Ids of the connections whose drivers answer now. */
  connectedIds(): string[] {
    return [...this.#running]
      .filter(([, running]) => running.state === 'connected' && running.driver)
      .map(([id]) => id);
  }

  /**
   * Waits until each of these connections is connected (a task run after a restart waits for its
   * hosts' agents to be back); ZEN_CONNECTION_DISCONNECTED once `timeoutMs` has passed.
   */
  async whenConnected(
    ids: string[],
    timeoutMs: number,
    signal?: AbortSignal,
    /** Ends the wait early, without an error, once it answers true. */
    enough?: () => Promise<boolean>,
  ): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const connected = () => ids.every((id) => this.#running.get(id)?.state === 'connected');
    while (!connected()) {
      if (enough && (await enough())) return;
      if (performance.now() > deadline || signal?.aborted) {
        for (const id of ids) this.driver(id);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Retries a disconnected connection now instead of after its backoff. */
  nudge(connectionId: string): void {
    this.#running.get(connectionId)?.nudge.abort();
  }

  /** The connection whose settings match, e.g. the one of an agent. */
  async findBySetting(key: string, value: unknown): Promise<Connection | undefined> {
    return (await this.list()).find((c) => c.settings[key] === value);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#running.keys()].map((id) => this.#stop(id)));
  }

  async #refuseTakenName(name: string): Promise<void> {
    await refuseTakenName(
      this.deps.store.db,
      'connections',
      name,
      `a connection named '${name}' exists`,
    );
  }

  #view(row: ConnectionsTable): Connection {
    const running = this.#running.get(row.id);
    const family = this.deps.registry.get(row.type);
    return {
      id: row.id,
      name: row.name,
      type: row.type,
      simulated: family.simulated,
      settings: JSON.parse(row.settings) as Record<string, unknown>,
      identityId: row.identity_id,
      state: running?.state ?? (row.state as ConnectionState),
      lastError: running?.lastError ?? row.last_error,
      lastSyncAt:
        running?.lastSyncAt ?? (row.last_sync_at === null ? null : Number(row.last_sync_at)),
      capabilities: running?.driver ? [...running.driver.info.capabilities] : [],
      createdAt: Number(row.created_at),
    };
  }

  #start(row: ConnectionsTable): Running {
    let resolveFirst!: () => void;
    const running: Running = {
      type: row.type,
      driver: undefined,
      known: undefined,
      abort: new AbortController(),
      state: 'connecting',
      lastError: null,
      lastSyncAt: row.last_sync_at,
      firstSync: new Promise<void>((resolve) => (resolveFirst = resolve)),
      loop: Promise.resolve(),
      nudge: new AbortController(),
    };
    this.#running.set(row.id, running);
    running.loop = this.#run(row, running, resolveFirst);
    return running;
  }

  async #run(row: ConnectionsTable, running: Running, firstSyncDone: () => void): Promise<void> {
    const { clock, logger, registry, inventory } = this.deps;
    const family = registry.get(row.type);
    const signal = running.abort.signal;
    const stateDir = join(this.deps.stateDir, 'connections', row.id);
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    let backoffMs = 1000;
    let claimedPeer = row.peer_id;
    while (!signal.aborted) {
      let driver: HypervisorDriver | undefined;
      try {
        const secret = row.secret ? this.deps.secrets.open(row.secret) : null;
        driver = family.create(JSON.parse(row.settings) as Record<string, unknown>, secret, {
          connectionId: row.id,
          clock,
          logger: logger.child({ connection: row.name }),
          stateDir,
          ...(this.deps.agentLink ? { agentLink: this.deps.agentLink } : {}),
        });
        running.driver = driver;
        await driver.connect();
        running.known = {
          capabilities: [...driver.info.capabilities],
          migrationProtocol: facetOf(driver, 'migration')?.protocol ?? null,
          liveness: facetOf(driver, 'liveness') !== undefined,
        };
        this.#knownByType.set(row.type, running.known);
        // Never two connections to one hypervisor: they would each move its VMs to themselves.
        const peer = driver.peerIdentity?.();
        if (peer !== undefined && peer !== claimedPeer) {
          await claimPeer(this.deps.store.db, row.id, peer);
          claimedPeer = peer;
        }
        const watch = driver.watch(signal)[Symbol.asyncIterator]();
        const snapshot = await driver.discover();
        await inventory.applySnapshot(row.id, snapshot.objects);
        await this.#setState(row.id, 'connected', null, clock.now());
        firstSyncDone();
        backoffMs = 1000;
        for (;;) {
          const next = await watch.next();
          if (next.done || signal.aborted) break;
          const delta = next.value;
          if (delta.type === 'upsert') await inventory.applyChanges(row.id, [delta.object]);
          else
            await inventory.applyChanges(
              row.id,
              [],
              [{ kind: delta.kind, externalId: delta.externalId }],
            );
        }
        if (signal.aborted) break;
        throw new ZenithError('ZEN_CONNECTION_FAILED', 'the change stream ended');
      } catch (error) {
        if (signal.aborted) break;
        const message = error instanceof Error ? error.message : String(error);
        logger.warn(
          { connection: row.name, err: message, retryInMs: backoffMs },
          'connection lost; will retry',
        );
        await this.#setState(row.id, 'disconnected', message, null);
        firstSyncDone();
      } finally {
        running.driver = undefined;
        await driver?.close().catch(() => undefined);
      }
      running.nudge = new AbortController();
      await clock
        .sleep(backoffMs, AbortSignal.any([signal, running.nudge.signal]))
        .catch(() => undefined);
      backoffMs = Math.min(backoffMs * 2, 60_000);
    }
  }

  /** Waits for `done` or `ms`, whichever comes first, leaving no timer behind (it would keep a process alive). */
  async #waitAtMost(done: Promise<void>, ms: number): Promise<void> {
    const timer = new AbortController();
    try {
      await Promise.race([done, this.deps.clock.sleep(ms, timer.signal).catch(() => undefined)]);
    } finally {
      timer.abort();
    }
  }

  async #setState(
    id: string,
    state: ConnectionState,
    lastError: string | null,
    syncedAt: number | null,
  ): Promise<void> {
    const running = this.#running.get(id);
    const changed = running?.state !== state;
    if (running) {
      running.state = state;
      running.lastError = lastError;
      if (syncedAt !== null) running.lastSyncAt = syncedAt;
    }
    await this.deps.store.db
      .updateTable('connections')
      .set({
        state,
        last_error: lastError,
        ...(syncedAt !== null ? { last_sync_at: syncedAt } : {}),
      })
      .where('id', '=', id)
      .execute();
    if (changed)
      await this.deps.events.publish([
        { type: `connection.${state}`, objectId: id, data: lastError ? { error: lastError } : {} },
      ]);
  }

  async #stop(id: string): Promise<void> {
    const running = this.#running.get(id);
    if (!running) return;
    running.abort.abort(new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'connection stopped'));
    await running.driver?.close().catch(() => undefined);
    await running.loop;
    this.#running.delete(id);
  }
}
