/**
 * What a VM left at a host: when a recovery plan moved it away (its stale definition there and
 * the disks that definition had), and when it was reprotected (the replica chain and run overlays
 * it ran from at that host). Recorded then (./recovery-runner.ts, ./replication-service.ts);
 * reclaimed after a cycle of the VM's replication to that host's site has made a ready point —
 * the site holds a newer consistent copy of the VM again — and only while the VM runs on another
 * host. Its stale definition there is deleted first, as an operator would (the driver's deleteVm:
 * the disks it owns and their claims go with it; one already gone is fine), then each image, one
 * at a time in the order recorded (an overlay before the image it reads through). The host
 * refuses an image a VM there uses (ZEN_DISK_IN_USE) and a definition that runs: that leftover
 * stays for a later cycle, as does everything on a host that does not answer. A reclaim never
 * fails the cycle that asked for it. Once the VM's replication is stopped, what it left anywhere is
 * reclaimed then, and what could not be is tried again every minute.
 */
import { isZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import { requireFacet, type ActionContext } from '../../hypervisors/driver.js';
import type { Db, Tx } from '../../store/store.js';
import { within, STALL_MS } from './replica-copy.js';
import type { Replication, ReplicationDeps } from './replica-types.js';

export interface Leftover {
  vmId: string;
  hostId: string;
  /** The host's own id of the VM's stale definition there, deleted first; null: images only. */
  definitionId: string | null;
  /** Absolute paths on that host, removed in this order. */
  paths: string[];
  reason: 'failover' | 'planned' | 'reprotect';
}

export class ReplicaLeftovers {
  constructor(
    private readonly deps: Pick<
      ReplicationDeps,
      'store' | 'inventory' | 'connections' | 'sites' | 'clock' | 'logger'
    >,
  ) {}

  /** Records one; the same leftover recorded again (a step resumed after a restart) is one. */
  async record(leftover: Leftover, tx: Tx | Db = this.deps.store.db): Promise<void> {
    if (leftover.paths.length === 0 && leftover.definitionId === null) return;
    const paths = JSON.stringify(leftover.paths);
    const same = await tx
      .selectFrom('replica_leftovers')
      .select('id')
      .where('vm_id', '=', leftover.vmId)
      .where('host_id', '=', leftover.hostId)
      .where('paths', '=', paths)
      .where('reason', '=', leftover.reason)
      .executeTakeFirst();
    if (same) return;
    await tx
      .insertInto('replica_leftovers')
      .values({
        id: newId('replicaLeftover', this.deps.clock.now()),
        vm_id: leftover.vmId,
        host_id: leftover.hostId,
        definition_id: leftover.definitionId,
        paths,
        reason: leftover.reason,
        created_at: this.deps.clock.now(),
      })
      .execute();
  }

  /** VMs with leftovers and no replication (it was stopped): theirs are reclaimed anywhere. */
  async orphaned(): Promise<Array<{ vmId: string }>> {
    return this.deps.store.db
      .selectFrom('replica_leftovers')
      .select('vm_id as vmId')
      .distinct()
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('replications')
              .select('id')
              .whereRef('replications.vm_id', '=', 'replica_leftovers.vm_id'),
          ),
        ),
      )
      .execute();
  }

  /** The VM's leftovers, oldest first. */
  async of(vmId: string): Promise<Array<Leftover & { id: string; since: number }>> {
    const rows = await this.deps.store.db
      .selectFrom('replica_leftovers')
      .selectAll()
      .where('vm_id', '=', vmId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map((row) => ({
      id: row.id,
      vmId: row.vm_id,
      hostId: row.host_id,
      definitionId: row.definition_id,
      paths: JSON.parse(row.paths) as string[],
      reason: row.reason as Leftover['reason'],
      since: Number(row.created_at),
    }));
  }

  /**
   * After a cycle made a ready point: what the VM left at the hosts of the replica's site goes.
   * `anySite`: the VM's replication was stopped, so no replica is wanted anywhere — what it left
   * at any host goes (still only while it runs on another host). Answers how many leftovers were
   * reclaimed whole.
   */
  async reclaim(
    replication: Pick<Replication, 'vmId' | 'vmName' | 'targetHostId'>,
    context: ActionContext,
    options: { anySite?: boolean } = {},
  ): Promise<number> {
    const { inventory, connections, sites, logger } = this.deps;
    const leftovers = await this.of(replication.vmId);
    if (leftovers.length === 0) return 0;
    const site = await sites.siteOf(replication.targetHostId);
    const vm = inventory.index.get(replication.vmId);
    const answering = new Set(connections.connectedIds());
    // Definitions first: a stale definition holds the images it used.
    const ordered = [
      ...leftovers.filter((l) => l.definitionId !== null),
      ...leftovers.filter((l) => l.definitionId === null),
    ];
    let reclaimed = 0;
    for (const leftover of ordered) {
      const host = inventory.index.get(leftover.hostId);
      if (!host?.connectionId || !answering.has(host.connectionId)) continue;
      // The VM runs there: nothing of it there is left over.
      if (vm?.connectionId === host.connectionId) continue;
      if (!options.anySite) {
        const hostSite =
          leftover.hostId === replication.targetHostId ? site : await sites.siteOf(host.id);
        if (!site || hostSite?.id !== site.id) continue;
      }
      try {
        const driver = connections.driver(host.connectionId);
        if (leftover.definitionId) {
          const deleted = await within(
            STALL_MS,
            'deleting a stale definition',
            driver.deleteVm(leftover.definitionId, context),
          ).catch((error: unknown) => {
            if (isZenithError(error) && error.code === 'ZEN_NOT_FOUND') return undefined;
            throw error;
          });
          if (deleted === null)
            logger.info(
              { vm: replication.vmName, host: host.name, definition: leftover.definitionId },
              'deleted the stale definition the VM left at a host (with the disks it owned)',
            );
        }
        const streams = requireFacet(driver, 'diskStreams', 'reclaiming leftover images');
        for (const path of leftover.paths)
          await within(STALL_MS, 'removing a leftover image', streams.removeImages([{ path }]));
        await this.deps.store.db
          .deleteFrom('replica_leftovers')
          .where('id', '=', leftover.id)
          .execute();
        reclaimed += 1;
        logger.info(
          {
            vm: replication.vmName,
            host: host.name,
            reason: leftover.reason,
            images: leftover.paths.length,
          },
          'reclaimed what the VM left at a host of its replica site',
        );
      } catch (error) {
        logger.warn(
          {
            vm: replication.vmName,
            host: host.name,
            code: isZenithError(error) ? error.code : undefined,
            err: error,
          },
          options.anySite
            ? 'what the VM left at a host was not reclaimed: tried again in a minute'
            : 'what the VM left at a host was not reclaimed: tried again after the next cycle',
        );
      }
    }
    return reclaimed;
  }
}
