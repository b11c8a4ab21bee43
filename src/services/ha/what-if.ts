/**
 * The what-if of high availability: if these hosts failed now, where would each protected VM
 * running on them start again, and which could not — answered by the placement engine on a
 * placement model, the way a failover places them (failover.ts): the failed hosts take nothing,
 * each VM runs again from its description (any host whose connection can create VMs may take it),
 * order group by order group and within a group highest priority first, each taking its room
 * before the next is placed. The model is left as it was.
 *
 * A simulator keeps what does not change between two sets of failed hosts on one model (each
 * host's protected VMs, each VM's placer), so admission control can ask about many sets cheaply.
 */
import { placeVm, VmPlacer } from '../placement/placement-engine.js';
import type { PlacementModel } from '../placement/placement-model.js';
import type { HostSlot, VmSlot } from '../placement/slots.js';
import type { HaPriority } from '../policy/policy-document.js';
import { haOfVm } from './ha-settings.js';
import { startOrder } from './ha-store.js';

/** One protected VM of a failed host. */
export interface ProtectedVm {
  vm: VmSlot;
  host: HostSlot;
  priority: HaPriority;
  restartOrder: number;
}

export interface WhatIfRestart {
  /** Null for a VM not created yet (the one a creation would add). */
  vmId: string | null;
  vmName: string;
  fromHostId: string;
  fromHostName: string;
  priority: HaPriority;
  restartOrder: number;
  /** Where it would run again; null when no host could take it. */
  toHostId: string | null;
  toHostName: string | null;
  /** When it cannot restart: how many hosts each check rejected (placement's reasons). */
  rejectedByReason: Record<string, number>;
}

export interface WhatIf {
  failedHosts: Array<{ id: string; name: string }>;
  /** In the order the failover would place them. */
  restarts: WhatIfRestart[];
  /** How many of them no host could take. */
  unrecoverable: number;
}

export interface WhatIfOptions {
  /**
   * Whether a VM runs (a failover restarts the protected VMs that were running). Default: a VM
   * not created yet does (it is created to run), an existing one when its power state is running.
   */
  running?: (vm: VmSlot) => boolean;
}

/** A VM not created yet (created to run), or one whose power state is running. */
export const runsNow = (vm: VmSlot): boolean =>
  vm.active && (vm.object === null || vm.object.facts['power.state'] === 'running');

/** Restart sequence: the failover's, order group by order group, then start order (priority). */
function restartSequence(a: ProtectedVm, b: ProtectedVm): number {
  return (
    a.restartOrder - b.restartOrder ||
    startOrder(
      { priority: a.priority, restartOrder: a.restartOrder, vmName: a.vm.name },
      { priority: b.priority, restartOrder: b.restartOrder, vmName: b.vm.name },
    )
  );
}

export class WhatIfSimulator {
  readonly #protected = new Map<number, ProtectedVm[]>();
  readonly #placers = new Map<string, VmPlacer>();
  readonly #running: (vm: VmSlot) => boolean;

  constructor(
    readonly model: PlacementModel,
    options: WhatIfOptions = {},
  ) {
    this.#running = options.running ?? runsNow;
  }

  /** The protected VMs running on a host now: what its failure would restart. */
  protectedOn(host: HostSlot): ProtectedVm[] {
    let list = this.#protected.get(host.index);
    if (list) return list;
    list = [];
    for (const id of host.vms) {
      const vm = this.model.vms.get(id);
      if (!vm || vm.home !== host.index || !this.#running(vm)) continue;
      const ha = haOfVm(this.model, vm.id, host);
      if (ha.protected)
        list.push({ vm, host, priority: ha.priority, restartOrder: ha.restartOrder });
    }
    this.#protected.set(host.index, list);
    return list;
  }

  /**
   * Where the protected VMs of these hosts would run again if they all failed now. With
   * `stopAtFirst`, ends at the first VM that cannot restart (its answer lists the VMs up to it).
   */
  run(failed: readonly HostSlot[], options: { stopAtFirst?: boolean } = {}): WhatIf {
    const { model } = this;
    const down = new Set(failed.map((host) => host.index));
    const within = (host: HostSlot) => !down.has(host.index);
    const queue = failed.flatMap((host) => this.protectedOn(host)).sort(restartSequence);
    const restarts: WhatIfRestart[] = [];
    const moved: Array<{ vm: VmSlot; from: HostSlot }> = [];
    let unrecoverable = 0;
    try {
      for (const entry of queue) {
        const { vm, host } = entry;
        const chosen = this.#place(vm, within);
        restarts.push({
          vmId: vm.object ? vm.id : null,
          vmName: vm.name,
          fromHostId: host.id,
          fromHostName: host.name,
          priority: entry.priority,
          restartOrder: entry.restartOrder,
          toHostId: chosen.host?.id ?? null,
          toHostName: chosen.host?.name ?? null,
          rejectedByReason: chosen.host ? {} : chosen.rejectedByReason,
        });
        if (!chosen.host) {
          unrecoverable++;
          if (options.stopAtFirst) break;
          continue;
        }
        // Its room is taken before the next VM is placed.
        model.move(vm, chosen.host);
        moved.push({ vm, from: host });
      }
    } finally {
      for (const { vm, from } of moved.reverse()) model.move(vm, from);
    }
    return {
      failedHosts: failed.map((host) => ({ id: host.id, name: host.name })),
      restarts,
      unrecoverable,
    };
  }

  /** Places a VM as a failover does: from its description, on none of the failed hosts. */
  #place(
    vm: VmSlot,
    within: (host: HostSlot) => boolean,
  ): { host: HostSlot | null; rejectedByReason: Record<string, number> } {
    const before = vm.fromDescription;
    vm.fromDescription = true;
    try {
      let placer = this.#placers.get(vm.id);
      if (!placer) this.#placers.set(vm.id, (placer = new VmPlacer(this.model, vm)));
      const decision = placeVm(this.model, vm, { explain: false, within }, placer);
      return {
        host: decision.chosen ? this.model.host(decision.chosen.hostId) : null,
        rejectedByReason: decision.rejectedByReason,
      };
    } finally {
      if (before === undefined) delete vm.fromDescription;
      else vm.fromDescription = before;
    }
  }
}

/** If these hosts failed now: where each protected VM running on them would run again, or not. */
export function whatIf(
  model: PlacementModel,
  failed: readonly HostSlot[],
  options: WhatIfOptions = {},
): WhatIf {
  return new WhatIfSimulator(model, options).run(failed);
}

/** A restart's reason in words: why no host takes it. */
export function unrecoverableReason(restart: WhatIfRestart): string {
  const reasons = Object.entries(restart.rejectedByReason)
    .map(([kind, hosts]) => `${hosts} host(s): ${kind}`)
    .join('; ');
  return `no host can take it${reasons ? ` (${reasons})` : ''}`;
}
