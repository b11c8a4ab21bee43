/**
 * Placement against the live inventory: builds a placement model (hosts,
 * VMs, policies in force, connection states, maintenance modes) and asks the
 * engine where a VM should go — a new VM described by its size, or an
 * existing one (where it could move). Used by POST /placement/preview and by
 * VM creation without a host.
 *
 * A new VM is then put to high availability's admission control (when a
 * policy sets hostFailuresToTolerate), which may refuse it.
 *
 * A host chosen for a VM being created is reserved until the VM shows up in
 * the inventory (or the creation ends): placements made meanwhile count it,
 * so concurrent creations neither overfill a host nor break anti-affinity.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import { canMigrateAcrossAgents } from '../vms/cross-host-migration.js';
import type { Requester } from '../policy/fact-sources.js';
import { adaptiveSample, placeVm, type PlacementDecision } from './placement-engine.js';
import {
  PlacementModel,
  type ConnectionFacts,
  type DraftVm,
  type HostMode,
} from './placement-model.js';
import type { PolicyIndex, PolicyService } from '../policy/policy-service.js';
import type { VmSlot } from './slots.js';

export interface PreviewRequest {
  /** A VM to create (its size and type), or an existing VM by id or name (where it could move). */
  vm: DraftVm | string;
  explain?: boolean;
  topCandidates?: number;
}

/** High availability's admission control, as placement asks it about a new VM. */
export interface AdmissionControl {
  /** Whether it may refuse anything now (cheap: asked before a model is built for it). */
  enabled(): boolean;
  /** Throws the refusal when the new VM, placed on the host of the model, may not be admitted. */
  admitNew(model: PlacementModel, vm: VmSlot, hostId: string): void;
}

interface Reservation {
  draft: DraftVm;
  hostId: string;
  expiresAt: number;
}

/** A reservation outlives its creation task only if that task never ran (cancelled while queued). */
const reservationLifetimeMs = 15 * 60_000;

export class PlacementService {
  readonly #reservations = new Map<number, Reservation>();
  /** Where the next sampled placement starts, across models: creations spread over the fleet. */
  #scanStart = 0;
  #nextReservation = 1;

  constructor(
    private readonly deps: {
      inventory: InventoryService;
      policies: PolicyService;
      connections: ConnectionService;
      clock: Clock;
      /** Zenith's own host modes (maintenance: host-modes.ts). */
      modes: () => ReadonlyMap<string, HostMode>;
      /** Powers a host in standby on and waits for it (power management); absent: never woken. */
      wake?: (hostId: string, signal: AbortSignal) => Promise<void>;
      /** Refuses creations high availability could not recover from (absent: none refused). */
      admission?: AdmissionControl;
    },
  ) {}

  /** What placement knows about connections, read from the live drivers. */
  readonly connectionFacts: ConnectionFacts = {
    isConnected: (connectionId) => {
      try {
        this.deps.connections.driver(connectionId);
        return true;
      } catch {
        return false;
      }
    },
    canCreate: (connectionId) => {
      try {
        return this.deps.connections.driver(connectionId).info.capabilities.includes('vm.create');
      } catch {
        return false;
      }
    },
    canMigrate: (from, to) => {
      try {
        if (from === to)
          return this.deps.connections.driver(from).info.capabilities.includes('vm.migrate');
        return canMigrateAcrossAgents(this.deps.connections, from, to);
      } catch {
        return false;
      }
    },
  };

  /** A fresh model of the fleet as it is now, creations in flight included. */
  model(
    options: {
      requester?: Requester | undefined;
      policies?: PolicyIndex;
      modes?: ReadonlyMap<string, HostMode>;
      /** Hosts in standby count as on: all of them, or these. */
      wakeStandby?: boolean | ReadonlySet<string>;
    } = {},
  ): PlacementModel {
    const modes = options.modes ?? this.deps.modes();
    const model = new PlacementModel({
      index: this.deps.inventory.index,
      policies: options.policies ?? this.deps.policies.index,
      connections: options.wakeStandby
        ? this.#awake(modes, options.wakeStandby)
        : this.connectionFacts,
      modes,
      requester: options.requester,
      ...(options.wakeStandby ? { wakeStandby: options.wakeStandby } : {}),
    });
    this.#applyReservations(model);
    return model;
  }

  preview(
    request: PreviewRequest,
    requester?: Requester,
    policies?: PolicyIndex,
  ): PlacementDecision {
    const model = this.model({ requester, ...(policies ? { policies } : {}) });
    return previewOn(model, this.deps.inventory, request);
  }

  /**
   * The host a new VM goes to, held for it until release() (call it when the
   * creation ends); or ZEN_NO_PLACEMENT with every host's reason.
   */
  chooseHost(
    draft: DraftVm,
    requester?: Requester,
  ): { hostId: string; decision: PlacementDecision; release: () => void; wakes: boolean } {
    const model = this.model({ requester });
    model.scanStart = this.#scanStart;
    let decision = placeVm(model, model.draftVm(draft), {
      explain: false,
      sample: adaptiveSample(model.hosts.length),
    });
    this.#scanStart = model.scanStart;
    let wakes = false;
    let decided = model;
    if (!decision.chosen) {
      // No room among the hosts that are on: power management may wake a host in standby.
      const awake = this.deps.wake ? this.model({ requester, wakeStandby: true }) : undefined;
      const woken = awake ? placeVm(awake, awake.draftVm(draft), { explain: false }) : undefined;
      if (awake && woken?.chosen && this.deps.modes().get(woken.chosen.hostId) === 'standby') {
        decision = woken;
        decided = awake;
        wakes = true;
      } else
        // Explain only when refusing: the answer says why each host was rejected.
        throw noPlacement(placeVm(model, model.draftVm(draft), { explain: true }));
    }
    const chosen = decision.chosen!;
    // High availability's admission control, on the model that chose (not kept afterwards).
    if (this.deps.admission?.enabled())
      this.deps.admission.admitNew(decided, decided.draftVm(draft), chosen.hostId);
    const id = this.#nextReservation++;
    this.#reservations.set(id, {
      draft,
      hostId: chosen.hostId,
      expiresAt: this.deps.clock.now() + reservationLifetimeMs,
    });
    return {
      hostId: chosen.hostId,
      decision,
      release: () => this.#reservations.delete(id),
      wakes,
    };
  }

  /** Admission control for a new VM on a host the request chose (throws the refusal). */
  admitNew(draft: DraftVm, hostId: string, requester?: Requester): void {
    const admission = this.deps.admission;
    if (!admission?.enabled()) return;
    const model = this.model({ requester });
    admission.admitNew(model, model.draftVm(draft), hostId);
  }

  /**
   * Connections as they would be with the hosts in standby powered on: their connections (down
   * while the machines are off) count as connected and able to create VMs, as they were.
   */
  #awake(modes: ReadonlyMap<string, HostMode>, which: true | ReadonlySet<string>): ConnectionFacts {
    const sleeping = new Set<string>();
    for (const [hostId, mode] of modes) {
      const woken = mode === 'standby' && (which === true || which.has(hostId));
      const connectionId = woken ? this.deps.inventory.index.get(hostId)?.connectionId : null;
      if (connectionId) sleeping.add(connectionId);
    }
    const live = this.connectionFacts;
    // A sleeping connection can do what it did when it last answered.
    const known = (id: string) => this.deps.connections.knownAbilities(id);
    const protocol = (id: string) => known(id)?.migrationProtocol ?? null;
    return {
      isConnected: (id) => sleeping.has(id) || live.isConnected(id),
      canCreate: (id) =>
        sleeping.has(id)
          ? known(id)?.capabilities.includes('vm.create') !== false
          : live.canCreate(id),
      canMigrate: (from, to) => {
        if (!sleeping.has(from) && !sleeping.has(to)) return live.canMigrate(from, to);
        if (from === to) return known(from)?.capabilities.includes('vm.migrate') === true;
        return protocol(from) === 'qemu' && protocol(to) === 'qemu';
      },
    };
  }

  /** Can hosts in standby be powered on (power management is wired)? */
  get canWake(): boolean {
    return this.deps.wake !== undefined;
  }

  /** Powers a host in standby on and waits until it answers (power management). */
  async wake(hostId: string, signal: AbortSignal): Promise<void> {
    if (!this.deps.wake)
      throw new ZenithError('ZEN_INVALID_STATE', 'this server cannot power hosts on', { hostId });
    await this.deps.wake(hostId, signal);
  }

  /** Creations in flight hold their host, unless their VM is in the inventory already. */
  #applyReservations(model: PlacementModel): void {
    const now = this.deps.clock.now();
    for (const [id, reservation] of this.#reservations) {
      if (reservation.expiresAt < now) {
        this.#reservations.delete(id);
        continue;
      }
      const host = model.hostById.get(reservation.hostId);
      if (!host) continue;
      const landed = [...host.vms].some(
        (vmId) => model.vms.get(vmId)?.name === reservation.draft.name,
      );
      if (landed) continue;
      model.place({ ...model.draftVm(reservation.draft), id: `reserved:${id}` }, host);
    }
  }
}

export function previewOn(
  model: PlacementModel,
  inventory: InventoryService,
  request: PreviewRequest,
): PlacementDecision {
  const options = {
    explain: request.explain ?? true,
    ...(request.topCandidates !== undefined ? { topCandidates: request.topCandidates } : {}),
  };
  if (typeof request.vm !== 'string') return placeVm(model, model.draftVm(request.vm), options);
  const object = inventory.resolve('vm', request.vm);
  const slot = model.vms.get(object.id);
  if (!slot)
    throw new ZenithError('ZEN_INVALID_STATE', `${object.name} is missing: it cannot be placed`, {
      vmId: object.id,
    });
  return placeVm(model, slot, {
    ...options,
    exclude: new Set(slot.home >= 0 ? [slot.home] : []),
  });
}

export function noPlacement(decision: PlacementDecision): ZenithError {
  const reasons = Object.entries(decision.rejectedByReason)
    .map(([kind, count]) => `${count} ${kind}`)
    .join(', ');
  return new ZenithError(
    'ZEN_NO_PLACEMENT',
    decision.hostsConsidered === 0
      ? `no host is known to place ${decision.vm.name} on`
      : `no host can take ${decision.vm.name}: of ${decision.hostsConsidered} hosts, rejected by ${reasons}`,
    {
      hostsConsidered: decision.hostsConsidered,
      rejectedByReason: decision.rejectedByReason,
      rejected: decision.rejected.slice(0, 100),
    },
  );
}
