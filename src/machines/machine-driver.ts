/**
 * What every BMC driver shares: it is a connection's driver like a
 * hypervisor's (connect, discover, watch, close, a peer identity), but it
 * discovers physical machines as hosts and nothing else, so every VM
 * operation is refused with ZEN_UNSUPPORTED, and its actions are the machine
 * facet (../hypervisors/facets/machine-power.ts). Machines have no change
 * feed a BMC pushes reliably, so watch() reads the status facts (power,
 * health, identify light, virtual media) again every `pollSeconds` and
 * reports what changed; pollNow() starts a round at once (after an action
 * whose effect the page should show without waiting for the next poll).
 */
import type { Clock } from '../core/clock.js';
import { ZenithError } from '../core/errors.js';
import type {
  Capability,
  DiscoveredObject,
  DiscoveredVm,
  DiscoverySnapshot,
  DriverInfo,
  FactValue,
  Facts,
  HypervisorDriver,
  InventoryDelta,
  MachineFacet,
} from '../hypervisors/driver.js';

/** The facts a poll reads again (power, health, identify, media); the rest comes with a full discovery. */
export interface MachineStatus {
  externalId: string;
  facts: Facts;
}

export abstract class MachineDriver implements HypervisorDriver {
  abstract readonly info: DriverInfo;
  abstract readonly facets: { machine: MachineFacet };
  /** The machines as last discovered, by external id: a poll lays the status it reads over them. */
  readonly #known = new Map<string, DiscoveredObject>();
  /** Ends the wait between two polls early (pollNow). */
  #wake = new AbortController();
  /** Callers of pollNow waiting for the next round to be reported (or to fail). */
  #roundWaiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  #watching = false;

  protected constructor(
    protected readonly clock: Clock,
    protected readonly pollMs: number,
  ) {}

  abstract connect(): Promise<void>;
  abstract peerIdentity(): string;
  abstract close(): Promise<void>;
  /** Every machine with all its hardware facts. */
  protected abstract readMachines(): Promise<DiscoveredObject[]>;
  /** Power and health of each machine (cheaper than a full discovery). */
  protected abstract readStatus(): Promise<MachineStatus[]>;

  async discover(): Promise<DiscoverySnapshot> {
    const machines = await this.readMachines();
    this.#known.clear();
    for (const machine of machines) this.#known.set(machine.externalId, machine);
    return { objects: machines };
  }

  async *watch(signal: AbortSignal): AsyncIterable<InventoryDelta> {
    this.#watching = true;
    try {
      while (!signal.aborted) {
        if (this.#roundWaiters.length === 0)
          try {
            await this.clock.sleep(this.pollMs, AbortSignal.any([signal, this.#wake.signal]));
          } catch {
            if (signal.aborted) return;
          }
        this.#wake = new AbortController();
        // Those who asked before this round wait for it; those who ask during it, for the next.
        const waiters = this.#roundWaiters.splice(0);
        let failure: { error: unknown } | undefined;
        try {
          yield* this.#pollRound();
        } catch (error) {
          failure = { error };
          throw error;
        } finally {
          // Past the round's last yield the consumer has applied every delta (it asked for more);
          // a watch closed mid-round also answers its waiters.
          for (const waiter of waiters)
            if (failure) waiter.reject(failure.error);
            else waiter.resolve();
        }
      }
    } finally {
      this.#watching = false;
      for (const waiter of this.#roundWaiters.splice(0)) waiter.resolve();
    }
  }

  /**
   * Polls at once rather than at the next period; resolves once the round's changes have been
   * reported (taken by whoever watches), rejects with the round's error. Resolves at once when
   * nobody watches (the next connection's discovery reads everything anyway).
   */
  pollNow(): Promise<void> {
    if (!this.#watching) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#roundWaiters.push({ resolve, reject });
      this.#wake.abort();
    });
  }

  async *#pollRound(): AsyncIterable<InventoryDelta> {
    const statuses = await this.readStatus();
    for (const status of statuses) {
      const known = this.#known.get(status.externalId);
      if (!known) {
        // A machine the last discovery did not see: discover again to learn its hardware.
        const snapshot = await this.discover();
        for (const object of snapshot.objects) yield { type: 'upsert', object };
        return;
      }
      const changed = Object.entries(status.facts).some(
        ([key, value]) => !sameFact(known.facts[key], value),
      );
      if (!changed) continue;
      const next = { ...known, facts: { ...known.facts, ...status.facts } };
      this.#known.set(status.externalId, next);
      yield { type: 'upsert', object: next };
    }
  }

  /** The capabilities every BMC driver has, and the ones its BMC adds. */
  protected static capabilities(extra: Capability[] = []): Capability[] {
    return ['machine.power', 'machine.boot', 'machine.identify', 'machine.fence', ...extra];
  }

  startVm(): Promise<DiscoveredVm> {
    return this.#noVms();
  }
  stopVm(): Promise<DiscoveredVm> {
    return this.#noVms();
  }
  rebootVm(): Promise<DiscoveredVm> {
    return this.#noVms();
  }
  suspendVm(): Promise<DiscoveredVm> {
    return this.#noVms();
  }
  resumeVm(): Promise<DiscoveredVm> {
    return this.#noVms();
  }
  deleteVm(): Promise<null> {
    return this.#noVms();
  }
  migrateVm(): Promise<DiscoveredVm> {
    return this.#noVms();
  }
  createVm(): Promise<DiscoveredVm> {
    return this.#noVms();
  }

  #noVms(): Promise<never> {
    return Promise.reject(
      new ZenithError(
        'ZEN_UNSUPPORTED',
        `a ${this.info.type} connection reaches a BMC, which runs no VMs`,
        { type: this.info.type },
      ),
    );
  }
}

function sameFact(a: FactValue | undefined, b: FactValue): boolean {
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((item, i) => item === b[i]);
  return a === b;
}

/** Redfish and IPMI health words as Zenith's: ok, warning, critical. */
export function healthFact(health: string | undefined): string | null {
  if (!health) return null;
  return health.toLowerCase();
}
