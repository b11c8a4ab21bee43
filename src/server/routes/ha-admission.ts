import { haWhatIf } from '../../api/ha-admission.js';
import type { HaAdmission } from '../../services/ha/admission-service.js';
import { unrecoverableReason } from '../../services/ha/what-if.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';

export interface HaAdmissionRouteServices {
  access: AccessService;
  haAdmission: HaAdmission;
  inventory: InventoryService;
}

/**
 * The what-if report: on hosts the caller may read (another is "not found"); VMs and target hosts
 * it may not read are counted, not named.
 */
export async function haAdmissionRoutes(
  app: Api,
  { access, haAdmission, inventory }: HaAdmissionRouteServices,
): Promise<void> {
  serve(app, haWhatIf, { audit: false, scope: 'filtered' }, async (request) => {
    const principal = principalOf(request);
    const readable = (id: string) => access.decide(principal, 'inventory.read', id).allowed;
    const hosts = request.body.hosts.map(
      (ref) => inventory.resolve('host', ref, (object) => readable(object.id)).id,
    );
    const report = haAdmission.whatIf(hosts);
    const restarts = report.restarts.map((restart) => {
      const seen = restart.vmId !== null && readable(restart.vmId);
      const there = restart.toHostId !== null && readable(restart.toHostId);
      return {
        vmId: seen ? restart.vmId : null,
        vmName: seen ? restart.vmName : null,
        fromHostId: restart.fromHostId,
        fromHostName: restart.fromHostName,
        priority: restart.priority,
        restartOrder: restart.restartOrder,
        toHostId: there ? restart.toHostId : null,
        toHostName: there ? restart.toHostName : null,
        restarts: restart.toHostId !== null,
        reason: restart.toHostId === null ? unrecoverableReason(restart) : null,
        rejectedByReason: restart.rejectedByReason,
      };
    });
    return {
      failedHosts: report.failedHosts.map((host, i) => ({
        ...host,
        hostFailuresToTolerate: report.tolerances[i]?.tolerance?.failures ?? 0,
      })),
      restarts,
      restarted: restarts.filter((restart) => restart.restarts).length,
      unrecoverable: report.unrecoverable,
    };
  });
}
