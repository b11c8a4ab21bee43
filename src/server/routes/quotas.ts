/** Quotas per group: set and clear them (identity.manage), read usage against them (members too). */
import { clearQuota, getQuota, listQuotas, setQuota } from '../../api/quotas.js';
import { ZenithError } from '../../core/errors.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { QuotaService } from '../../services/quotas/quota-service.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';

export interface QuotaRouteServices {
  quotas: QuotaService;
  access: AccessService;
}

export async function quotaRoutes(app: Api, { quotas, access }: QuotaRouteServices): Promise<void> {
  serve(app, listQuotas, {}, async () => ({ items: await quotas.list() }));
  serve(app, getQuota, {}, async (request) => {
    const principal = principalOf(request);
    const group = await access.getGroup(request.params.id);
    // Whoever may not read it learns no more than for a group that does not exist.
    if (
      !quotas.isMember(principal.id, group.id) &&
      !access.decide(principal, 'identity.manage', null).allowed &&
      !access.decide(principal, 'audit.read', null).allowed
    )
      throw new ZenithError('ZEN_NOT_FOUND', `no group '${request.params.id}'`, {
        group: request.params.id,
      });
    return quotas.get(group.id);
  });
  serve(app, setQuota, { audit: 'quota.set' }, async (request) =>
    quotas.set(request.params.id, request.body, principalOf(request).name),
  );
  serve(app, clearQuota, { audit: 'quota.clear' }, async (request) =>
    quotas.clear(request.params.id),
  );
}
