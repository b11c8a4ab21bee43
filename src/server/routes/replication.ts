import {
  cleanUpRecoveryTest,
  createRecoveryPlan,
  createSite,
  deleteRecoveryPlan,
  deleteSite,
  exportRecoveryPlan,
  getRecoveryPlan,
  getReplication,
  getSite,
  listRecoveryPlans,
  listRecoveryRuns,
  listReplications,
  listSites,
  previewRecoveryPlan,
  protectVm,
  replicateNow,
  reprotectRecoveryPlan,
  replicationReport,
  runRecoveryPlan,
  unprotectVm,
  updateReplication,
  updateSite,
} from '../../api/replication.js';
import { toCsv } from '../../core/csv.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import type { RecoveryPlans } from '../../services/replication/recovery-plans.js';
import type { ReplicationService } from '../../services/replication/replication-service.js';
import type { SiteService } from '../../services/replication/sites.js';
import { principalOf } from '../auth.js';
import { noContent, serve, type Api } from '../route.js';
import { acceptTask } from '../task-reply.js';

export interface ReplicationRouteServices {
  sites: SiteService;
  replication: ReplicationService;
  recoveryPlans: RecoveryPlans;
  access: AccessService;
  inventory: InventoryService;
}

const reportHeader = [
  'vm_id',
  'vm_name',
  'point_id',
  'seq',
  'taken_at',
  'finished_at',
  'rpo_before_seconds',
  'rpo_after_seconds',
  'rpo_target_seconds',
  'read_bytes',
];

/**
 * Sites and recovery plans span hosts and VMs across sites: they are managed and run on everything
 * (replication.manage, recovery.run there). A VM's replication is reached as the VM is; protecting
 * one needs replication.manage on the VM and on the host its replica goes to.
 */
export async function replicationRoutes(
  app: Api,
  { sites, replication, recoveryPlans, access, inventory }: ReplicationRouteServices,
): Promise<void> {
  const onVm = [{ param: 'id', kind: 'vm' }] as const;

  serve(app, listSites, {}, async () => ({ items: await sites.list() }));
  serve(app, createSite, { audit: 'site.create' }, async (request, reply) =>
    reply.status(201).send(await sites.create(request.body, principalOf(request).name)),
  );
  serve(app, getSite, {}, async (request) => sites.get(request.params.id));
  serve(app, updateSite, { audit: 'site.update' }, async (request) =>
    sites.update(request.params.id, request.body),
  );
  serve(app, deleteSite, { audit: 'site.delete' }, async (request, reply) => {
    await sites.remove(request.params.id);
    return noContent(reply);
  });

  serve(app, listReplications, { scope: 'filtered' }, async (request) => {
    const principal = principalOf(request);
    return {
      items: (await replication.list()).filter(
        (item) => access.decide(principal, 'replication.read', item.vm.id).allowed,
      ),
    };
  });
  serve(
    app,
    protectVm,
    { audit: 'replication.protect', scope: [...onVm, { body: 'targetHost', kind: 'host' }] },
    async (request, reply) =>
      reply
        .status(201)
        .send(
          await replication.protect(request.params.id, request.body, principalOf(request).name),
        ),
  );
  serve(app, getReplication, { scope: [...onVm] }, async (request) =>
    replication.get(request.params.id),
  );
  serve(
    app,
    updateReplication,
    { audit: 'replication.update', scope: [...onVm] },
    async (request) => replication.update(request.params.id, request.body),
  );
  serve(
    app,
    unprotectVm,
    { audit: 'replication.unprotect', scope: [...onVm] },
    async (request, reply) => {
      await replication.remove(request.params.id);
      return noContent(reply);
    },
  );
  serve(app, replicateNow, { audit: false, scope: [...onVm] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      replication.cycleNow(request.params.id, actor, requestId),
    ),
  );
  serve(app, replicationReport, { scope: 'filtered' }, async (request, reply) => {
    const principal = principalOf(request);
    const vmId = request.query.vm ? inventory.resolve('vm', request.query.vm).id : undefined;
    const rows = (
      await replication.report({
        ...(vmId ? { vmId } : {}),
        ...(request.query.since !== undefined ? { since: request.query.since } : {}),
      })
    ).filter((row) => access.decide(principal, 'replication.read', row.vmId).allowed);
    if (request.query.format === 'csv')
      return reply.type('text/csv; charset=utf-8').send(
        toCsv(
          reportHeader,
          rows.map((row) => [
            row.vmId,
            row.vmName,
            row.pointId,
            row.seq,
            new Date(row.takenAt).toISOString(),
            new Date(row.finishedAt).toISOString(),
            row.rpoBeforeSeconds,
            row.rpoAfterSeconds,
            row.rpoTargetSeconds,
            row.readBytes,
          ]),
        ),
      );
    return { items: rows };
  });

  serve(app, listRecoveryPlans, {}, async () => ({ items: await recoveryPlans.list() }));
  serve(app, createRecoveryPlan, { audit: 'recoveryPlan.create' }, async (request, reply) =>
    reply.status(201).send(await recoveryPlans.create(request.body, principalOf(request).name)),
  );
  serve(app, getRecoveryPlan, {}, async (request) => recoveryPlans.get(request.params.id));
  serve(app, deleteRecoveryPlan, { audit: 'recoveryPlan.delete' }, async (request, reply) => {
    await recoveryPlans.remove(request.params.id);
    return noContent(reply);
  });
  serve(app, exportRecoveryPlan, {}, async (request) => recoveryPlans.export(request.params.id));
  serve(app, previewRecoveryPlan, {}, async (request) =>
    recoveryPlans.preview(request.params.id, request.query.operation),
  );
  serve(app, runRecoveryPlan, { audit: false }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      recoveryPlans.run(request.params.id, request.body.operation, actor, requestId),
    ),
  );
  serve(app, reprotectRecoveryPlan, { audit: 'recoveryPlan.reprotect' }, async (request) =>
    recoveryPlans.reprotect(request.params.id, principalOf(request).name),
  );
  serve(app, listRecoveryRuns, {}, async (request) => ({
    items: await recoveryPlans.runs(request.params.id),
  }));
  serve(app, cleanUpRecoveryTest, { audit: false }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      recoveryPlans.cleanUp(request.params.id, request.params.runId, actor, requestId),
    ),
  );
}
