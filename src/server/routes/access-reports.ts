/** Compliance reports (audit.read): effective access, access changes and actions by identity, as JSON or CSV. */
import {
  accessChangesReport,
  actionsReport,
  effectiveAccessReport,
  type AuditReportRow,
} from '../../api/access-reports.js';
import { toCsv } from '../../core/csv.js';
import type { AccessReports } from '../../services/identity/access-report.js';
import { serve, type Api } from '../route.js';

const csvType = 'text/csv; charset=utf-8';

function auditCsv(rows: AuditReportRow[]): string {
  return toCsv(
    ['seq', 'time', 'actor', 'actor_id', 'action', 'target', 'result', 'error_code', 'params'],
    rows.map((r) => [
      r.seq,
      new Date(r.ts).toISOString(),
      r.actorName,
      r.actorId,
      r.action,
      r.targetId,
      r.result,
      r.errorCode,
      JSON.stringify(r.params),
    ]),
  );
}

export interface AccessReportRouteServices {
  accessReports: AccessReports;
}

export async function accessReportRoutes(
  app: Api,
  { accessReports: reports }: AccessReportRouteServices,
): Promise<void> {
  serve(app, effectiveAccessReport, {}, async (request, reply) => {
    const { format, ...filter } = request.query;
    const rows = await reports.effectiveAccess(filter);
    if (format !== 'csv') return { items: rows };
    return reply.type(csvType).send(
      toCsv(
        [
          'identity',
          'identity_id',
          'identity_kind',
          'permission',
          'scope',
          'scope_id',
          'scope_kind',
          'binding',
          'role',
          'via_groups',
        ],
        rows.map((r) => [
          r.identityName,
          r.identityId,
          r.identityKind,
          r.permission,
          r.scopeName,
          r.scopeId,
          r.scopeKind,
          r.bindingId,
          r.role,
          r.viaGroups.join(' > '),
        ]),
      ),
    );
  });
  serve(app, accessChangesReport, {}, async (request, reply) => {
    const rows = await reports.accessChanges(request.query);
    return request.query.format === 'csv'
      ? reply.type(csvType).send(auditCsv(rows))
      : { items: rows };
  });
  serve(app, actionsReport, {}, async (request, reply) => {
    const { identity, from, to } = request.query;
    const rows = await reports.actionsBy(identity, { from, to });
    return request.query.format === 'csv'
      ? reply.type(csvType).send(auditCsv(rows))
      : { items: rows };
  });
}
