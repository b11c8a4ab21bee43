/**
 * High availability's admission control against the live fleet (admission.ts decides), asked by
 * placement before a creation is accepted and by VM actions before a start or a move is queued;
 * and the what-if report for any set of hosts.
 *
 * Nothing is built unless some policy sets hostFailuresToTolerate above 0 (asked first, remembered
 * per policy index); then one placement model per decision, its moves undone between failures.
 * There is no force: an admin who must act sets the tolerance lower (0 turns it off), as vSphere
 * refuses power-ons that violate admission control until it is disabled.
 */
import type { ActionAdmission } from '../vms/vm-actions.js';
import type { PlacementModel } from '../placement/placement-model.js';
import type { AdmissionControl, PlacementService } from '../placement/placement-service.js';
import type { HostSlot, VmSlot } from '../placement/slots.js';
import type { PolicyService } from '../policy/policy-service.js';
import {
  admissionError,
  admit,
  anyToleratesFailures,
  recoverability,
  toleranceOf,
  type Tolerance,
} from './admission.js';
import { runsNow, whatIf, type WhatIf } from './what-if.js';

export interface WhatIfReport extends WhatIf {
  /** The tolerance in force on each failed host (null: none). */
  tolerances: Array<{ hostId: string; tolerance: Tolerance | null }>;
}

export class HaAdmission implements AdmissionControl, ActionAdmission {
  constructor(
    private readonly deps: {
      placement: PlacementService;
      policies: Pick<PolicyService, 'index'>;
    },
  ) {}

  /** Whether some policy asks for admission control at all. */
  enabled(): boolean {
    return anyToleratesFailures(this.deps.policies.index);
  }

  /** A new VM on a host of the model (placement's model, which is then dropped). */
  admitNew(model: PlacementModel, vm: VmSlot, hostId: string): void {
    const host = model.hostById.get(hostId);
    if (!host || !toleranceOf(model, host)) return;
    model.place(vm, host);
    const refusal = admit(model, 'create', vm, host);
    if (refusal) throw refusal;
  }

  /** A stopped VM started where it is, or a suspended one resumed (a failover restarts running VMs only). */
  admitStart(vmId: string, action: 'start' | 'resume' = 'start'): void {
    if (!this.enabled()) return;
    const model = this.deps.placement.model();
    const vm = model.vms.get(vmId);
    const host = vm ? model.hosts[vm.home] : undefined;
    if (!vm || !host || !toleranceOf(model, host)) return;
    model.setActive(vm, true);
    const refusal = admit(model, action, vm, host, {
      running: (slot) => slot === vm || runsNow(slot),
    });
    if (refusal) throw refusal;
  }

  /**
   * A VM moved to another host: refused when the move is what breaks it (the target's scope
   * recovered from every failure within tolerance with the VM where it is), so that moves within
   * a fleet already short of room (a host down, evacuations) still go.
   */
  admitMigration(vmId: string, targetHostId: string): void {
    if (!this.enabled()) return;
    const model = this.deps.placement.model();
    const vm = model.vms.get(vmId);
    const source: HostSlot | undefined = vm ? model.hosts[vm.home] : undefined;
    const target = model.hostById.get(targetHostId);
    if (!vm || !target || target === source) return;
    const tolerance = toleranceOf(model, target);
    if (!tolerance) return;
    model.move(vm, target);
    const after = recoverability(model, tolerance);
    if (!after.failure) return;
    if (source) {
      model.move(vm, source);
      if (recoverability(model, tolerance).failure) return;
    }
    throw admissionError('migrate', vm.name, target.name, { ...after, failure: after.failure });
  }

  /** If these hosts (ids) failed now: where each protected VM running on them would run again. */
  whatIf(hostIds: readonly string[]): WhatIfReport {
    const model = this.deps.placement.model();
    const hosts = [...new Set(hostIds)].map((id) => model.host(id));
    return {
      ...whatIf(model, hosts),
      tolerances: hosts.map((host) => ({ hostId: host.id, tolerance: toleranceOf(model, host) })),
    };
  }
}
