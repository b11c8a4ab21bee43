import { listAudit, verifyAudit } from '../../api/audit.js';
import type { AuditService } from '../../services/audit/audit-service.js';
import { serve, type Api } from '../route.js';

export interface AuditRouteServices {
  audit: AuditService;
}

export async function auditRoutes(app: Api, { audit }: AuditRouteServices): Promise<void> {
  serve(app, listAudit, {}, async (request) => {
    const q = request.query;
    const limit = q.limit ?? 100;
    const items = await audit.list({
      limit,
      ...(q.cursor !== undefined ? { beforeSeq: q.cursor } : {}),
      ...(q.actorId ? { actorId: q.actorId } : {}),
      ...(q.actorName ? { actorName: q.actorName } : {}),
      ...(q.targetId ? { targetId: q.targetId } : {}),
      ...(q.action ? { action: q.action } : {}),
      ...(q.since !== undefined ? { since: q.since } : {}),
      ...(q.until !== undefined ? { until: q.until } : {}),
    });
    return { items, nextCursor: items.length === limit ? items[items.length - 1]!.seq : null };
  });
  serve(app, verifyAudit, { audit: 'audit.verify' }, async () => audit.verify());
}
