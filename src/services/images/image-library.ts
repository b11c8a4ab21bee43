/**
 * The image library (decision 0040): the images lying in each host's storage, as its storage-scan
 * facet finds them — disk images, ISO files, kernels and initrds — with their facts, and the disks
 * no defined VM uses any more. A host is scanned as a task when its connection comes up and when
 * asked; a scan's result replaces what the library knew of that host (in one transaction): files
 * found again are updated, new ones added, files gone marked missing (never under a root that
 * could not be read, nor after a truncated scan, where absence proves nothing).
 */
import { Type } from 'typebox';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Logger } from '../../core/logger.js';
import { requireFacet, type StorageScan } from '../../hypervisors/driver.js';
import type { ImagesTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { Task, TaskKind, TaskService } from '../tasks/task-service.js';
import { imageOf, usageOf, type ImageRecord, type ScanSummary } from './image-records.js';

export type { ImageRecord, ImageUsage, ScanSummary } from './image-records.js';

const ScanParams = Type.Object({ hostName: Type.Optional(Type.String()) });

export interface ImageQuery {
  hostId?: string;
  kind?: string;
  format?: string;
  /** Only disks whose VM no host defines (unregistered) or whose VM is missing. */
  orphaned?: boolean;
  /** present (default), missing, or all. */
  status?: 'present' | 'missing' | 'all';
  /** Which hosts' images the caller may see. */
  visibleHost: (hostId: string) => boolean;
  after?: string;
  limit: number;
}

export class ImageLibrary {
  readonly #scan: TaskKind<{ hostName?: string }>;
  #unsubscribe: (() => void) | undefined;

  constructor(
    private readonly deps: {
      store: Store;
      inventory: InventoryService;
      connections: ConnectionService;
      tasks: TaskService;
      events: EventBus;
      clock: Clock;
      logger: Logger;
      /** Who scans at connect (a service identity). */
      scannerActor: () => Promise<Actor>;
    },
  ) {
    this.#scan = deps.tasks.register({
      name: 'host.images.scan',
      params: ScanParams,
      run: async ({ task, signal, progress }) =>
        this.#runScan(task.targetId!, { signal, progress }),
      // A scan reads and records; run again, it records the same.
      recover: async () => 'retry',
      // Scans of a host wait for each other, not for the host's other tasks (VMs created there,
      // an evacuation, its machine's power), nor they for a scan of a slow storage.
      lane: (task) => `images:${task.targetId ?? task.id}`,
    });
  }

  /** Scans every host of a connection that comes up (and can be scanned). */
  start(): void {
    this.#unsubscribe = this.deps.events.subscribe((event) => {
      if (event.type !== 'connection.connected' || !event.objectId) return;
      void this.#scanConnection(event.objectId).catch((error: unknown) =>
        this.deps.logger.warn(
          { connectionId: event.objectId, err: (error as Error).message },
          'could not queue the image scan of a connected host',
        ),
      );
    });
  }

  stop(): void {
    this.#unsubscribe?.();
  }

  async #scanConnection(connectionId: string): Promise<void> {
    const hosts = this.deps.inventory.index
      .ofConnection(connectionId)
      .filter((o) => o.kind === 'host' && o.status === 'present');
    if (hosts.length === 0) return;
    let driver;
    try {
      driver = this.deps.connections.driver(connectionId);
    } catch {
      return;
    }
    if (!driver.facets?.storageScan) return;
    const actor = await this.deps.scannerActor();
    for (const host of hosts) await this.scan(host.id, actor);
  }

  /** Queues a scan of the host's storage; refuses at once a host that cannot be scanned now. */
  async scan(hostId: string, owner: Actor, requestId?: string): Promise<Task> {
    const host = this.#host(hostId);
    requireFacet(
      this.deps.connections.driver(host.connectionId!),
      'storageScan',
      'scan storage for images',
    );
    return this.deps.tasks.submit({
      kind: this.#scan,
      targetId: host.id,
      params: { hostName: host.name },
      owner,
      ...(requestId ? { requestId } : {}),
    });
  }

  async #runScan(
    hostId: string,
    context: Parameters<ReturnType<typeof requireFacet<'storageScan'>>['scanStorage']>[0],
  ): Promise<ScanSummary> {
    const host = this.#host(hostId);
    const facet = requireFacet(
      this.deps.connections.driver(host.connectionId!),
      'storageScan',
      'scan storage for images',
    );
    const scan = await facet.scanStorage(context);
    const failed = scan.roots.filter((root) => root.error !== null);
    if (failed.length > 0 && failed.length === scan.roots.length)
      throw new ZenithError('ZEN_STORAGE_ROOT_UNREADABLE', failed[0]!.error!.message, {
        hostId,
        roots: failed.map((r) => ({ root: r.root, message: r.error!.message })),
      });
    return this.#record(hostId, host.connectionId!, scan);
  }

  /** Writes a scan's result for a host in one transaction; answers what changed. */
  async #record(hostId: string, connectionId: string, scan: StorageScan): Promise<ScanSummary> {
    const now = this.deps.clock.now();
    const readable = scan.roots.filter((r) => r.error === null).map((r) => r.root);
    const defined = new Set(scan.definedVmUuids);
    let created = 0;
    let updated = 0;
    let missing = 0;
    await this.deps.store.transaction(async (tx) => {
      const known = new Map(
        (await tx.selectFrom('images').selectAll().where('host_id', '=', hostId).execute()).map(
          (row) => [row.path, row],
        ),
      );
      for (const image of scan.images) {
        const values = {
          root: image.root,
          name: image.path.slice(image.path.lastIndexOf('/') + 1),
          format: image.format,
          kind: image.kind,
          virtual_bytes: image.virtualBytes,
          file_bytes: image.fileBytes,
          allocated_bytes: image.allocatedBytes,
          backing_file: image.backingFile,
          label: image.label,
          problem: image.problem,
          link_target: image.linkTarget,
          modified_at: image.modifiedAt,
          owner_vm_uuid: image.owner?.vmUuid ?? null,
          owner_vm_name: image.owner?.vmName ?? null,
          owner_defined: image.owner && defined.has(image.owner.vmUuid) ? 1 : 0,
          status: 'present' as const,
          missing_since: null,
          scanned_at: now,
          connection_id: connectionId,
        };
        const row = known.get(image.path);
        known.delete(image.path);
        if (row) {
          await tx.updateTable('images').set(values).where('id', '=', row.id).execute();
          updated += 1;
        } else {
          await tx
            .insertInto('images')
            .values({
              ...values,
              id: newId('image', now),
              host_id: hostId,
              path: image.path,
              first_seen_at: now,
            } satisfies ImagesTable)
            .execute();
          created += 1;
        }
      }
      // What was not found again is gone — where the scan could see: a readable root, not truncated.
      if (!scan.truncated)
        for (const row of known.values()) {
          if (row.status === 'missing' || !readable.includes(row.root)) continue;
          await tx
            .updateTable('images')
            .set({ status: 'missing', missing_since: now })
            .where('id', '=', row.id)
            .execute();
          missing += 1;
        }
      const summary = {
        roots: scan.roots,
        skipped: scan.skipped,
        truncated: scan.truncated,
        images: scan.images.length,
      };
      await tx
        .insertInto('image_scans')
        .values({
          host_id: hostId,
          scanned_at: now,
          duration_ms: scan.finishedAt - scan.startedAt,
          summary: JSON.stringify(summary),
        })
        .onConflict((c) =>
          c.column('host_id').doUpdateSet({
            scanned_at: now,
            duration_ms: scan.finishedAt - scan.startedAt,
            summary: JSON.stringify(summary),
          }),
        )
        .execute();
    });
    const orphans = scan.images
      .map((image) => ({
        image,
        usage: usageOf(
          this.deps.inventory,
          image.owner?.vmUuid ?? null,
          image.owner !== null && defined.has(image.owner.vmUuid),
        ),
      }))
      .filter(({ usage }) => usage === 'unregistered' || usage === 'vm-missing');
    const result: ScanSummary = {
      hostId,
      images: scan.images.length,
      created,
      updated,
      missing,
      orphaned: orphans.length,
      orphanedBytes: orphans.reduce((sum, { image }) => sum + image.allocatedBytes, 0),
      corrupt: scan.images.filter((image) => image.problem !== null).length,
      roots: scan.roots,
      skipped: scan.skipped,
      truncated: scan.truncated,
      durationMs: scan.finishedAt - scan.startedAt,
    };
    this.deps.logger.info(result, 'storage scanned for images');
    return result;
  }

  /** One image; ZEN_NOT_FOUND for an id there is none of. */
  async get(id: string): Promise<ImageRecord> {
    const row = await this.deps.store.db
      .selectFrom('images')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw new ZenithError('ZEN_NOT_FOUND', `no image ${id}`, { id });
    return imageOf(row, this.deps.inventory);
  }

  /** The host an image lies on: who may read that host may read the image. */
  async hostOf(id: string): Promise<string> {
    const row = await this.deps.store.db
      .selectFrom('images')
      .select('host_id')
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw new ZenithError('ZEN_NOT_FOUND', `no image ${id}`, { id });
    return row.host_id;
  }

  /** A page of images, ordered by id, of the hosts the caller may see. */
  async list(query: ImageQuery): Promise<{ items: ImageRecord[]; next: string | null }> {
    const items: ImageRecord[] = [];
    let after = query.after ?? '';
    const chunk = 500;
    for (;;) {
      let select = this.deps.store.db
        .selectFrom('images')
        .selectAll()
        .where('id', '>', after)
        .orderBy('id')
        .limit(chunk);
      if (query.hostId) select = select.where('host_id', '=', query.hostId);
      if (query.kind) select = select.where('kind', '=', query.kind);
      if (query.format) select = select.where('format', '=', query.format);
      const status = query.status ?? 'present';
      if (status !== 'all') select = select.where('status', '=', status);
      const rows = await select.execute();
      for (const row of rows) {
        after = row.id;
        if (!query.visibleHost(row.host_id)) continue;
        const image = imageOf(row, this.deps.inventory);
        if (query.orphaned !== undefined && image.orphaned !== query.orphaned) continue;
        items.push(image);
        if (items.length === query.limit) return { items, next: row.id };
      }
      if (rows.length < chunk) return { items, next: null };
    }
  }

  /** The host's last scan, or null when it was never scanned. */
  async lastScan(hostId: string): Promise<{ scannedAt: number; durationMs: number } | null> {
    const row = await this.deps.store.db
      .selectFrom('image_scans')
      .selectAll()
      .where('host_id', '=', hostId)
      .executeTakeFirst();
    return row ? { scannedAt: row.scanned_at, durationMs: row.duration_ms } : null;
  }

  #host(hostId: string) {
    const host = this.deps.inventory.get(hostId);
    if (host.kind !== 'host' || host.connectionId === null)
      throw new ZenithError('ZEN_NOT_FOUND', `no host ${hostId}`, { hostId });
    return host;
  }
}
