/** What replication keeps about a protected VM and its points in time (./replication-service.ts). */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { SecretBox } from '../../core/secret-box.js';
import type { PortableVm } from '../../hypervisors/driver.js';
import type { Store } from '../../store/store.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { IdentityService } from '../identity/identity-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { TaskService } from '../tasks/task-service.js';
import type { SiteService } from './sites.js';

/** One disk of a point: its image at the target and how it was made. */
export interface PointDisk {
  diskId: string;
  /** The image on the target host (absolute). */
  path: string;
  capacityBytes: number;
  /** The image it is an overlay of (the point before's); null: a full image. */
  backing: string | null;
  /** The source checkpoint the read of this point made (the next read starts there). */
  checkpoint: string | null;
}

export interface ReplicaPoint {
  id: string;
  replicationId: string;
  seq: number;
  state: 'writing' | 'ready' | 'merging' | 'merged' | 'failed';
  takenAt: number;
  finishedAt: number | null;
  taskId: string;
  disks: PointDisk[];
  readBytes: number;
}

export interface Replication {
  id: string;
  vmId: string;
  vmName: string;
  targetHostId: string;
  directory: string;
  rpoSeconds: number;
  intervalSeconds: number;
  keepPoints: number;
  state: 'active' | 'paused' | 'recovered';
  description: PortableVm | null;
  nextCycleAt: number | null;
  lastTaskId: string | null;
  rpoExceeded: boolean;
  /** interval: cycles of changed extents; sync: a write-blocking mirror into a running replica. */
  mode: 'interval' | 'sync';
  /** Where a sync replication's mirror stands (null for interval replications). */
  sync: SyncStanding | null;
  /** A sync replication's key, sealed (null for interval replications). */
  syncKey: string | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

/**
 * A sync replication's mirror: not set up yet (null state), being set up, every write reaching the
 * replica, or lost (interval cycles until it is set up again).
 */
export interface SyncStanding {
  state: 'engaging' | 'mirroring' | 'fallback' | null;
  /** The live overlays at the target, by disk id: the next point's images. */
  overlays: Record<string, string>;
  since: number | null;
  error: { code: string; message: string } | null;
}

export interface ReplicationDeps {
  store: Store;
  inventory: InventoryService;
  connections: ConnectionService;
  tasks: TaskService;
  events: EventBus;
  identities: IdentityService;
  sites: SiteService;
  /** Seals a sync replication's key. */
  secrets: SecretBox;
  clock: Clock;
  logger: Logger;
  /** How often the loop looks for cycles due and RPOs over target (default 1 s). */
  tickMs?: number;
}
