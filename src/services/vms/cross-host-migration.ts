/**
 * Migration of a VM to a host of another connection, through the migration
 * facets of both ends (hypervisors/facets/migration-endpoint.ts), the same
 * for every family: the destination gets ready and reports nothing of the VM,
 * the source sends it, and only once the destination has it — and the
 * inventory has re-homed the same object (matched by its UUID) — does the
 * source let go. A failure or a cancellation leaves the VM running on the
 * source and the destination cleaned up, so its location history simply
 * continues on the new host, or stays.
 *
 * If the source's end falls silent in mid-migration (an agent killed), its
 * hypervisor may carry on sending: where both ends can say how a migration
 * stands, the destination then tells how it ended, and the source settles its
 * side when it returns.
 */
import { isZenithError, ZenithError } from '../../core/errors.js';
import {
  facetOf,
  type ActionContext,
  type DiscoveredVm,
  type MigrationEndpoint,
  type SendOptions,
} from '../../hypervisors/driver.js';
import type { IncomingState, OutgoingState } from '../../hypervisors/facets/migration-endpoint.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';

export interface MigrationStats {
  /** From the first byte sent to the switch-over (null when the source went silent and could not say). */
  totalTimeMs: number | null;
  /** How long the guest was paused: the hypervisor's figure, plus the disk hand-over of a storage migration. */
  downtimeMs: number | null;
  transferredBytes: number | null;
  /** Disk bytes a storage migration copied, where the family counts them. */
  diskBytes?: number | null;
}

/** How long the destination may go on receiving after the source's end fell silent. */
const silentSourceGraceMs = 10 * 60_000;
/** How long a run after a restart waits for the two ends' agents to be back. */
const reconnectGraceMs = 3 * 60_000;

interface MigrationEnds {
  source: MigrationEndpoint;
  target: MigrationEndpoint;
}

/**
 * The two ends of a migration between these connections; refuses (ZEN_UNSUPPORTED, before
 * anything is queued) ends that cannot migrate to each other.
 */
export function migrationEnds(
  connections: ConnectionService,
  sourceConnectionId: string,
  targetConnectionId: string,
  targetHostId: string,
): MigrationEnds {
  const source = facetOf(connections.driver(sourceConnectionId), 'migration');
  const target = facetOf(connections.driver(targetConnectionId), 'migration');
  if (!source || !target || source.protocol !== target.protocol)
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      'migration between hosts of different connections is supported between QEMU hosts under Zenith (agents or its own) or two libvirt connections',
      { targetHostId },
    );
  if (source.guestKind !== target.guestKind)
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      `a ${source.guestKind} VM cannot move to a ${target.guestKind} host`,
    );
  source.checkOutgoing?.();
  target.checkIncoming?.();
  return { source, target };
}

/**
 * Whether both connections are QEMU hosts under Zenith (agents, or the control plane's own),
 * between which placement plans moves.
 */
export function canMigrateAcrossAgents(
  connections: ConnectionService,
  sourceConnectionId: string,
  targetConnectionId: string,
): boolean {
  return [sourceConnectionId, targetConnectionId].every(
    (id) => facetOf(connections.driver(id), 'migration')?.protocol === 'qemu',
  );
}

export async function migrateAcrossHosts(
  deps: {
    inventory: InventoryService;
    connections: ConnectionService;
    /** High availability has declared the host failed. */
    hostFailed?: (hostId: string) => boolean;
  },
  vm: ManagedObject,
  targetHost: ManagedObject,
  options: SendOptions,
  context: ActionContext,
  /** A run after a restart: a migration of this VM left under way between these ends is settled first. */
  resume = false,
): Promise<MigrationStats> {
  // The destination's host failed (high availability says so) after the switch-over, while the
  // control plane was down: the VM is that host's now, though its end cannot be reached at all.
  if (resume && deps.hostFailed?.(targetHost.id) === true) {
    const source = facetOf(deps.connections.driver(vm.connectionId!), 'migration');
    if (source?.outgoingState && (await source.outgoingState(vm.externalId!)) === 'departed') {
      await leaveToFailedHost({ ...deps, vm, source, targetHost, context }, vm.externalId!);
      return { totalTimeMs: null, downtimeMs: null, transferredBytes: null };
    }
  }
  const { source, target } = migrationEnds(
    deps.connections,
    vm.connectionId!,
    targetHost.connectionId!,
    targetHost.id,
  );
  const ends = { ...deps, vm, source, target, targetHost, context };
  if (resume && source.outgoingState && target.incomingState) {
    const left = await leftUnderWay(ends, vm.externalId!);
    if (left === 'moved') return { totalTimeMs: null, downtimeMs: null, transferredBytes: null };
    if (left === 'lost')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `the migration of ${vm.name} was cut off by a restart and neither end has the VM now (high availability restarts it elsewhere if it is protected)`,
      );
  }
  context.progress({ percent: 0, message: 'preparing the destination' });
  const offer = await source.exportVm(vm.externalId!);
  const id = offer.migrationId;
  const incoming = await target.prepareIncoming(offer, {
    withStorage: options.withStorage === true,
    ...(options.multifdChannels ? { multifdChannels: options.multifdChannels } : {}),
  });
  let stats: MigrationStats;
  let resumesAtFinish = false;
  // Restarted elsewhere by high availability meanwhile (the source's host failed and was
  // fenced): the reception will never be finished, and goes at once.
  const restartedElsewhere = () =>
    deps.inventory.index.get(vm.id)?.connectionId !== vm.connectionId;
  // The source's host declared failed by high availability (fenced before any restart): the VM is
  // the failover's; the destination's copy never resumes, even a complete one.
  const sourceFailed = () => vm.parentId !== null && deps.hostFailed?.(vm.parentId) === true;
  try {
    // A crashed source's agent never answers the send: the failover's verdict stops the wait.
    const sending = source.send(id, incoming, options, context);
    sending.catch(() => undefined); // awaited below, or no longer once the source is lost
    const watch = new AbortController();
    try {
      const { resumesAtFinish: paused, ...result } = await Promise.race([
        sending,
        sourceLost(() => sourceFailed() || restartedElsewhere(), vm.name, watch.signal),
      ]);
      stats = result;
      resumesAtFinish = paused === true;
    } finally {
      watch.abort();
    }
  } catch (error) {
    const silent =
      isZenithError(error) &&
      (error.code === 'ZEN_CONNECTION_DISCONNECTED' || error.code === 'ZEN_TIMEOUT');
    if (
      !silent ||
      (await arrival(source, target, id, context, restartedElsewhere, sourceFailed)) !== 'received'
    ) {
      await target.abortIncoming(id).catch(() => undefined);
      throw error;
    }
    stats = { totalTimeMs: null, downtimeMs: null, transferredBytes: null, diskBytes: null };
  }
  let handOverMs = 0;
  try {
    handOverMs = await handOverTo(ends, id);
  } catch (error) {
    // Where it went is for the two ends to say: the VM runs at exactly one of them afterwards.
    if (!source.outgoingState || !target.incomingState) {
      await source.finishOutgoing(id, false).catch(() => undefined);
      throw error;
    }
    if ((await settle(ends, id)) !== 'moved') throw error;
  }
  if (resumesAtFinish && stats.downtimeMs !== null && stats.downtimeMs !== undefined)
    stats = { ...stats, downtimeMs: stats.downtimeMs + handOverMs };
  return stats;
}

interface Ends {
  inventory: InventoryService;
  hostFailed?: (hostId: string) => boolean;
  /** The VM as it was when the migration began (on the source's connection). */
  vm: ManagedObject;
  source: MigrationEndpoint;
  target: MigrationEndpoint;
  targetHost: ManagedObject;
  context: ActionContext;
}

/**
 * After the switch-over: the destination resumes the guest and reports it, its report re-homes the
 * same inventory object (matched by UUID), and only then does the source let go. An unreachable
 * source settles its side itself when it returns (it finds its VM gone).
 */
async function handOverTo(ends: Ends, id: string): Promise<number> {
  const started = performance.now();
  const arrived = await ends.target.finishIncoming(id);
  const handOverMs = Math.round(performance.now() - started);
  await ends.inventory.applyChanges(ends.targetHost.connectionId!, [arrived]);
  await ends.source.finishOutgoing(id, true).catch(() => undefined);
  return handOverMs;
}

/**
 * A run after a restart: what an earlier run of this migration left at the two ends. Nothing under
 * way ('none': a leftover reception is removed, the migration starts again), settled to the
 * destination ('moved') or back to the source ('stayed': it starts again), or neither has the VM.
 */
async function leftUnderWay(ends: Ends, id: string): Promise<'none' | 'moved' | 'stayed' | 'lost'> {
  ends.context.progress({ percent: 0, message: 'settling what the restart cut off' });
  const settled = await settle(ends, id);
  return settled === 'stayed' ? 'none' : settled;
}

/** The source's state, or that its end cannot be reached (its agent away: crashed, fenced or cut off). */
type SourceState = OutgoingState | 'unreachable';
/** The destination's, or that its host failed (declared so by high availability) after the switch-over. */
type DestinationState = IncomingState | 'unreachable';

const unreachable = (error: unknown) =>
  isZenithError(error) && ['ZEN_CONNECTION_DISCONNECTED', 'ZEN_TIMEOUT'].includes(error.code);

/**
 * Both ends' states. The destination's is asked again while it cannot answer (an agent reconnecting
 * after a restart); a source that cannot answer is said to be unreachable: its host may be gone for
 * good (high availability fences it and restarts the VM), so the destination alone decides then.
 * A destination that cannot answer after the source let the VM go, on a host high availability has
 * declared failed, is said to be unreachable too: the VM went down with that host.
 */
async function statesOf(ends: Ends, id: string): Promise<[SourceState, DestinationState]> {
  const deadline = performance.now() + reconnectGraceMs;
  for (;;) {
    const [outgoing, incoming] = await Promise.allSettled([
      ends.source.outgoingState!(id),
      ends.target.incomingState!(id),
    ]);
    if (incoming.status === 'fulfilled') {
      if (outgoing.status === 'fulfilled') return [outgoing.value, incoming.value];
      if (unreachable(outgoing.reason)) return ['unreachable', incoming.value];
      throw outgoing.reason;
    }
    if (
      unreachable(incoming.reason) &&
      outgoing.status === 'fulfilled' &&
      outgoing.value === 'departed' &&
      ends.hostFailed?.(ends.targetHost.id) === true
    )
      return ['departed', 'unreachable'];
    if (
      !unreachable(incoming.reason) ||
      performance.now() > deadline ||
      ends.context.signal.aborted
    )
      throw incoming.reason;
    await sleep(500);
  }
}

/**
 * Settles a migration past its start, by what the two ends say: the destination has received the
 * VM (it has the newest state, whether or not it resumed it) → it resumes and reports it, the
 * source lets go; the destination lost it while the source holds it, paused after the switch-over
 * → the destination's leftovers are removed first, then the source takes it back; the source
 * still sends → wait. The guest never runs at both ends: the destination resumes it only in
 * finishIncoming, and the source only once the destination's QEMU is gone. A destination that
 * lost the reception while the source cannot be reached is cleaned up at once (so that nothing of
 * it stands in the way of a restart of the VM by high availability), and the source is waited
 * for; a source that no longer knows the VM while the destination still waits means the VM went
 * elsewhere (high availability restarted it): the reception goes, and the migration is lost.
 */
async function settle(ends: Ends, id: string): Promise<'moved' | 'stayed' | 'lost'> {
  const deadline = performance.now() + silentSourceGraceMs;
  for (;;) {
    const [outgoing, incoming] = await statesOf(ends, id);
    // Restarted from its disks on another host meanwhile (high availability, its host fenced): the
    // reception is left over, and must never resume a second copy.
    const now = ends.inventory.get(ends.vm.id);
    if (now.connectionId !== ends.vm.connectionId) {
      await ends.target.abortIncoming(id).catch(() => undefined);
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${ends.vm.name} was restarted on ${String(now.computed['location.hostName'] ?? 'another host')} while its migration was cut off: the migration is over`,
        { connectionId: now.connectionId },
      );
    }
    // Handed over to a host that failed since: the VM is that host's, and runs again elsewhere in
    // its failover (from its disks; the paused copy the source kept goes, never to run).
    if (incoming === 'unreachable') {
      await leaveToFailedHost(ends, id);
      return 'moved';
    }
    // Still receiving from a source whose host failed (fenced): it never completes, and its QEMU
    // holds the disks a restart elsewhere needs: it goes, and high availability restarts the VM.
    if (
      incoming === 'receiving' &&
      outgoing === 'unreachable' &&
      ends.vm.parentId !== null &&
      ends.hostFailed?.(ends.vm.parentId) === true
    ) {
      await ends.target.abortIncoming(id);
      return 'lost';
    }
    // The source runs it (its send failed, or never began): the destination's QEMU only goes.
    if (outgoing === 'stayed') {
      await ends.target.abortIncoming(id);
      return 'stayed';
    }
    if (incoming === 'received') {
      await handOverTo(ends, id);
      return 'moved';
    }
    if (
      (incoming === 'failed' && outgoing !== 'sending') ||
      (incoming === 'receiving' && outgoing === 'gone')
    ) {
      await ends.target.abortIncoming(id);
      if (outgoing === 'gone') return 'lost';
      if (outgoing !== 'unreachable') {
        await ends.source.finishOutgoing(id, false);
        return 'stayed';
      }
    }
    if (performance.now() > deadline || ends.context.signal.aborted)
      throw new ZenithError(
        'ZEN_TIMEOUT',
        `the migration did not settle: the source says ${outgoing}, the destination ${incoming}`,
        { outgoing, incoming },
      );
    await sleep(250);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Rejects (as a silent source) once `lost` holds, looked at every second until `signal` aborts;
 * never resolves.
 */
function sourceLost(lost: () => boolean, vmName: string, signal: AbortSignal): Promise<never> {
  return new Promise<never>((_resolve, reject) => {
    const timer = setInterval(() => {
      if (!lost()) return;
      clearInterval(timer);
      reject(
        new ZenithError(
          'ZEN_CONNECTION_DISCONNECTED',
          `the source host of ${vmName}'s migration failed (high availability has the VM)`,
        ),
      );
    }, 1000);
    signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  });
}

/**
 * The switch-over was done and the destination's host failed before it reported the VM: the
 * inventory puts the VM on that host, as it would have had the host reported it (running, the
 * same object by its UUID), so that high availability's failover of the host runs it again
 * elsewhere; the source ends the paused copy it kept (its disks were handed over with it).
 */
async function leaveToFailedHost(
  ends: Pick<Ends, 'inventory' | 'vm' | 'source' | 'targetHost' | 'context'>,
  id: string,
): Promise<void> {
  const vm = ends.inventory.get(ends.vm.id);
  const host = ends.targetHost;
  ends.context.progress({
    percent: 90,
    message: `${host.name} failed after the switch-over: the VM is left to its failover`,
  });
  const { 'qemu.pid': _pid, ...facts } = vm.facts;
  const left: DiscoveredVm = {
    kind: 'vm',
    externalId: id,
    name: vm.name,
    parent: { kind: 'host', externalId: host.externalId! },
    facts: { ...facts, 'power.state': 'running' },
    hostExternalId: host.externalId!,
    powerState: 'running',
  };
  await ends.inventory.applyChanges(host.connectionId!, [left]);
  await ends.source.finishOutgoing(id, true);
}

/**
 * The source's end went silent: waits for the destination to have the VM or
 * to have lost it, or for the returning source to say the VM stayed. Ends
 * that cannot say how a migration stands count as lost, and so does the
 * reception once the source's host is declared failed or the VM restarted
 * elsewhere: high availability has the VM then.
 */
async function arrival(
  source: MigrationEndpoint,
  target: MigrationEndpoint,
  id: string,
  context: ActionContext,
  restartedElsewhere: () => boolean,
  sourceFailed: () => boolean,
): Promise<'received' | 'failed'> {
  if (!target.incomingState || !source.outgoingState) return 'failed';
  const deadline = performance.now() + silentSourceGraceMs;
  context.progress({
    percent: 50,
    message: "the source's agent went silent; asking the destination",
  });
  while (performance.now() < deadline && !context.signal.aborted) {
    // High availability has the VM (its source's host failed): the reception goes, even complete.
    if (sourceFailed() || restartedElsewhere()) return 'failed';
    const state = await target.incomingState(id).catch(() => 'unknown' as const);
    if (state === 'received' || state === 'failed') return state;
    // Only a source that kept the VM settles it; one that let go ('departed', 'gone') leaves it to the destination.
    const left = await source.outgoingState(id).catch(() => 'unknown' as const);
    if (left === 'stayed' || restartedElsewhere()) return 'failed';
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return 'failed';
}
