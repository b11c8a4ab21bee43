/**
 * A QEMU host's synchronous-replication facet (facets/sync-replication.ts): the recovery host's end
 * is one replica daemon per disk (sync-mirror-target.ts) in `<directory>/<diskId>`, the protected
 * VM's end its QEMU's write-blocking mirror (sync-mirror-source.ts, through `driver.syncMirrors`).
 *
 * Nothing of a replica is held here between calls: each call finds the daemons again from their
 * directories and lets go of their monitors once done, so a daemon is the same to an agent that
 * started it and to one restarted since (it is detached and outlives the agent). Every path is
 * checked to be inside the host's storage roots: the control plane names them, the agent writes.
 * A replica listens on the host's migration address unless told otherwise, a free port per disk.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { ZenithError } from '../../core/errors.js';
import { pathWithinRoots } from '../../core/paths.js';
import type {
  Replica,
  ReplicaDisk,
  ReplicaPointMerge,
  ReplicaPointRequest,
  ReplicaPointTaken,
  ReplicaStart,
  SyncMirrorStartOptions,
  SyncMirrorStatus,
  SyncMirrorTarget,
  SyncReplicationFacet,
} from '../facets/sync-replication.js';
import type { QemuHost } from './qemu-host.js';
import type { QemuSyncMirrors } from './qemu-sync-mirrors.js';
import { findReplicaDaemon, startReplicaDaemon, type ReplicaDaemon } from './sync-mirror-target.js';
import { checkPsk } from './tls-psk.js';

/** A disk id names a directory below the replica's: letters, digits, dashes and underscores. */
function checkDiskId(diskId: string): void {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(diskId))
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      `'${diskId}' is not a disk id (1 to 64 letters, digits, dashes or underscores)`,
      { field: 'diskId' },
    );
}

/** A port nobody listens on now at the host's address (the kernel's choice, let go at once). */
function freePortAt(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error) =>
      reject(
        new ZenithError('ZEN_BAD_REQUEST', `cannot listen on ${host}: ${error.message}`, {
          host,
        }),
      ),
    );
    server.listen({ host, port: 0 }, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function diskOf(diskId: string, daemon: ReplicaDaemon): ReplicaDisk {
  const { host, port, exportName, base, overlay, startedAt } = daemon.state;
  return { diskId, host, port, exportName, base, overlay, startedAt };
}

export class QemuSyncReplication implements SyncReplicationFacet {
  constructor(
    private readonly host: Pick<QemuHost, 'storageRoots' | 'clock' | 'migrationAddress'>,
    private readonly mirrors: QemuSyncMirrors,
  ) {}

  #path(path: string): string {
    return pathWithinRoots(path, this.host.storageRoots);
  }

  /** The daemons running below the directory, by disk id (each connected: release them). */
  async #daemons(directory: string): Promise<Map<string, ReplicaDaemon>> {
    const found = new Map<string, ReplicaDaemon>();
    const root = this.#path(directory);
    if (!existsSync(root)) return found;
    // In the disks' order by name, whatever order the file system lists them in.
    const entries = readdirSync(root, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const daemon = await findReplicaDaemon(join(root, entry.name), { clock: this.host.clock });
      if (daemon) found.set(entry.name, daemon);
    }
    return found;
  }

  async startReplica(request: ReplicaStart): Promise<Replica> {
    const directory = this.#path(request.directory);
    checkPsk(request.psk);
    if (request.disks.length === 0)
      throw new ZenithError('ZEN_BAD_REQUEST', 'a replica serves at least one disk', {
        field: 'disks',
      });
    // By default where other hosts reach this one: its migration address.
    const listenHost = request.listen?.host ?? this.host.migrationAddress;
    const listenPort = request.listen?.port;
    if (listenPort !== undefined && request.disks.length > 1)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'each disk is served on a port of its own: a port is given only for a replica of one disk',
        { field: 'listen.port', disks: request.disks.length },
      );
    const ids = request.disks.map((d) => d.diskId);
    for (const id of ids) checkDiskId(id);
    if (new Set(ids).size !== ids.length)
      throw new ZenithError('ZEN_BAD_REQUEST', 'a disk is named twice', { field: 'disks' });
    const running = await this.#daemons(directory);
    for (const daemon of running.values()) await daemon.release();
    if (running.size > 0)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `a replica runs already in ${directory}: find it, or stop it first`,
        { directory, disks: [...running.keys()] },
      );
    const started: Array<{ diskId: string; daemon: ReplicaDaemon }> = [];
    try {
      for (const disk of request.disks) {
        const base = this.#path(disk.base);
        const stamp = new Date(this.host.clock.now()).toISOString().replace(/[-:.]/g, '');
        const overlay = this.#path(
          disk.overlay ?? join(dirname(base), `${disk.diskId}-sync-${stamp}.qcow2`),
        );
        const daemon = await startReplicaDaemon({
          dir: join(directory, disk.diskId),
          base,
          overlay,
          host: listenHost,
          port: listenPort ?? (await freePortAt(listenHost)),
          psk: request.psk,
          exportName: disk.diskId,
          writethrough: request.writethrough === true,
          clock: this.host.clock,
        });
        started.push({ diskId: disk.diskId, daemon });
      }
    } catch (error) {
      // All of the replica or none of it: the daemons started for the disks before are stopped.
      for (const { daemon } of started) await daemon.stop().catch(() => undefined);
      throw error;
    }
    const disks = started.map(({ diskId, daemon }) => diskOf(diskId, daemon));
    for (const { daemon } of started) await daemon.release();
    return { directory, disks };
  }

  async findReplica(directory: string): Promise<Replica | null> {
    const running = await this.#daemons(directory);
    if (running.size === 0) return null;
    const disks = [...running].map(([diskId, daemon]) => diskOf(diskId, daemon));
    for (const daemon of running.values()) await daemon.release();
    return { directory: this.#path(directory), disks };
  }

  async takePoint(directory: string, points: ReplicaPointRequest[]): Promise<ReplicaPointTaken[]> {
    for (const { diskId } of points) checkDiskId(diskId);
    const running = await this.#daemons(directory);
    try {
      const missing = points.filter((p) => !running.has(p.diskId)).map((p) => p.diskId);
      if (missing.length > 0)
        throw new ZenithError(
          'ZEN_NOT_FOUND',
          `no replica of ${missing.join(', ')} runs in ${this.#path(directory)}`,
          { directory, disks: missing },
        );
      // Every daemon found first, so the points of a VM's disks are taken close together.
      const taken: ReplicaPointTaken[] = [];
      for (const { diskId, path } of points) {
        const point = await running.get(diskId)!.takePoint(this.#path(path));
        taken.push({ diskId, ...point });
      }
      return taken;
    } finally {
      for (const daemon of running.values()) await daemon.release();
    }
  }

  async mergePoint(directory: string, merge: ReplicaPointMerge): Promise<void> {
    checkDiskId(merge.diskId);
    const overlay = this.#path(merge.overlay);
    const backing = this.#path(merge.backing);
    const running = await this.#daemons(directory);
    try {
      const daemon = running.get(merge.diskId);
      if (!daemon)
        throw new ZenithError(
          'ZEN_NOT_FOUND',
          `no replica of ${merge.diskId} runs in ${this.#path(directory)}: fold its files instead`,
          { directory, disks: [merge.diskId] },
        );
      await daemon.mergePoint(overlay, backing);
    } finally {
      for (const daemon of running.values()) await daemon.release();
    }
  }

  async stopReplica(directory: string): Promise<void> {
    for (const daemon of (await this.#daemons(directory)).values()) await daemon.stop();
  }

  startMirror(
    vmExternalId: string,
    diskId: string,
    target: SyncMirrorTarget,
    options: SyncMirrorStartOptions = {},
  ): Promise<SyncMirrorStatus> {
    return this.mirrors.start(vmExternalId, diskId, target, options);
  }

  mirrorStatus(vmExternalId: string, diskId: string): Promise<SyncMirrorStatus> {
    return this.mirrors.status(vmExternalId, diskId);
  }

  stopMirror(vmExternalId: string, diskId: string): Promise<SyncMirrorStatus> {
    return this.mirrors.stop(vmExternalId, diskId);
  }
}
