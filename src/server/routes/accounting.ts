import {
  accountingReport,
  addRateCard,
  getRateCard,
  listRateCards,
  setVmOwnership,
  showback,
  vmOwnershipHistory,
  withdrawRateCard,
  type Dimension,
  type Granularity,
} from '../../api/accounting.js';
import type { AccountingService } from '../../services/accounting/accounting-service.js';
import { reportCsv } from '../../services/accounting/report-csv.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';

export interface AccountingRouteServices {
  accounting: AccountingService;
}

export async function accountingRoutes(
  app: Api,
  { accounting }: AccountingRouteServices,
): Promise<void> {
  serve(app, listRateCards, {}, async () => ({ items: await accounting.rateCards() }));
  serve(app, getRateCard, {}, async (request) => accounting.rateCard(request.params.id));
  serve(app, addRateCard, { audit: 'accounting.rate-card.add' }, async (request, reply) => {
    const { effectiveFrom, ...body } = request.body;
    const card = await accounting.addRateCard({ effectiveFrom, body }, principalOf(request).id);
    return reply.status(201).send(card);
  });
  serve(app, withdrawRateCard, { audit: 'accounting.rate-card.withdraw' }, async (request) =>
    accounting.withdrawRateCard(request.params.id),
  );
  serve(app, vmOwnershipHistory, { scope: [{ param: 'id', kind: 'vm' }] }, async (request) => ({
    items: await accounting.ownershipHistory(request.params.id),
  }));
  serve(
    app,
    setVmOwnership,
    { audit: 'accounting.ownership.set', scope: [{ param: 'id', kind: 'vm' }] },
    async (request) =>
      accounting.setOwnership(request.params.id, request.body, principalOf(request).name),
  );
  serve(app, accountingReport, {}, async (request, reply) => {
    const q = request.query;
    const report = await accounting.report({
      from: q.from,
      to: q.to,
      granularity: (q.granularity ?? 'daily') as Granularity,
      groupBy: (q.groupBy ?? 'vm') as Dimension,
      ...(q.timeZone ? { timeZone: q.timeZone } : {}),
      ...(q.vm !== undefined ? { vm: q.vm } : {}),
      ...(q.owner !== undefined ? { owner: q.owner } : {}),
      ...(q.group !== undefined ? { group: q.group } : {}),
      ...(q.costCenter !== undefined ? { costCenter: q.costCenter } : {}),
    });
    if (q.format === 'csv') return reply.type('text/csv; charset=utf-8').send(reportCsv(report));
    return report;
  });
  serve(app, showback, {}, async (request) => accounting.showback(request.query));
}
