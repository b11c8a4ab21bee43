import { haWhatIf } from '../../api/ha-admission.js';
import type { HaAdmission } from '../../services/ha/admission-service.js';
import { unrecoverableReason } from '../../services/ha/what-if.js';
import type { AccessService } from '../../services/identity/access-service.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';

export interface HaAdmissionRouteServices {
  access: AccessService;
  haAdmission: HaAdmission;
}

/**
 * The what-if report: on hosts the caller may read (another is "not found", as for any object
 * named); VMs and target hosts it may not read are counted, not named.
 */
export async function haAdmissionRoutes(
  app: Api,
  { access, haAdmission }: HaAdmissionRouteServices,
): Promise<void> {
  // Each host named is checked (and resolved to its id) before the handler runs.
  const scope = [{ body: 'hosts', kind: 'host' }] as const;
  serve(app, haWhatIf, { audit: false, scope: [...scope] }, async (request) => {
    const principal = principalOf(request);
    const readable = (id: string) => access.decide(principal, 'inventory.read', id).allowed;
    const report = haAdmission.whatIf(request.body.hosts);
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
