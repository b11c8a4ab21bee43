import { Readable } from 'node:stream';
import {
  addBackupRepository,
  backUpVm,
  collectBackupGarbage,
  createBackupDownloadTicket,
  pruneBackupRepository,
  deleteBackup,
  downloadBackupDisk,
  downloadWithTicket,
  getBackup,
  getBackupRepository,
  listBackupRepositories,
  listBackups,
  removeBackupRepository,
  restoreBackup,
  restoreBackupDisk,
  testBackup,
  verifyBackupRepository,
  getVerifySchedule,
  listRepositorySchedules,
  setVerifySchedule,
  removeVerifySchedule,
  getGarbageCollectSchedule,
  setGarbageCollectSchedule,
  removeGarbageCollectSchedule,
} from '../../api/backups.js';
import type { Clock } from '../../core/clock.js';
import type { AuditService } from '../../services/audit/audit-service.js';
import type { BackupService } from '../../services/backup/backup-service.js';
import { DownloadTickets } from '../../services/backup/download-tickets.js';
import type { RepositorySchedules } from '../../services/backup/repository-schedules.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { SessionService } from '../../services/identity/session-service.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import { ZenithError } from '../../core/errors.js';
import { principalOf } from '../auth.js';
import { noContent, serve, type Api } from '../route.js';
import { acceptTask } from '../task-reply.js';

export interface BackupRouteServices {
  backups: BackupService;
  repositorySchedules: RepositorySchedules;
  inventory: InventoryService;
  access: AccessService;
  sessions: SessionService;
  audit: AuditService;
  clock: Clock;
}

export async function backupRoutes(
  app: Api,
  { backups, repositorySchedules, inventory, access, sessions, audit, clock }: BackupRouteServices,
): Promise<void> {
  const downloads = new DownloadTickets({ backups, access, sessions, clock });
  const onBackup = [{ param: 'id', kind: 'backup' }] as const;

  // Repositories are infrastructure: read with backup.read on everything.
  serve(app, listBackupRepositories, {}, async () => ({
    items: await backups.repositories(),
  }));
  serve(app, addBackupRepository, { audit: 'backupRepository.add' }, async (request, reply) => {
    const answer = await backups.addRepository(request.body);
    return reply.status(201).send(answer);
  });
  serve(app, getBackupRepository, {}, async (request) =>
    backups.repositoryUsage(request.params.id),
  );
  serve(
    app,
    removeBackupRepository,
    { audit: 'backupRepository.remove' },
    async (request, reply) => {
      await backups.removeRepository(request.params.id);
      return noContent(reply);
    },
  );
  serve(app, listRepositorySchedules, {}, async (request) => ({
    items: await repositorySchedules.list(request.params.id),
  }));
  for (const [work, operations] of [
    ['verify', { get: getVerifySchedule, set: setVerifySchedule, remove: removeVerifySchedule }],
    [
      'garbage-collect',
      {
        get: getGarbageCollectSchedule,
        set: setGarbageCollectSchedule,
        remove: removeGarbageCollectSchedule,
      },
    ],
  ] as const) {
    serve(app, operations.get, {}, async (request) =>
      repositorySchedules.get(work, request.params.id),
    );
    serve(app, operations.set, { audit: `backupRepository.schedule.${work}` }, async (request) =>
      repositorySchedules.set(work, request.params.id, request.body),
    );
    serve(
      app,
      operations.remove,
      { audit: `backupRepository.schedule.${work}.remove` },
      async (request, reply) => {
        await repositorySchedules.remove(work, request.params.id);
        return noContent(reply);
      },
    );
  }
  serve(app, verifyBackupRepository, { audit: false }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      backups.verify(request.params.id, actor, requestId),
    ),
  );

  serve(app, pruneBackupRepository, { audit: false }, async (request, reply) => {
    const { vm, dryRun, ...retention } = request.body;
    const vmId = vm ? inventory.resolve('vm', vm).id : undefined;
    return acceptTask(request, reply, (actor, requestId) =>
      backups.prune(
        request.params.id,
        { retention, ...(vmId ? { vmId } : {}), ...(dryRun ? { dryRun } : {}) },
        actor,
        requestId,
      ),
    );
  });
  serve(app, collectBackupGarbage, { audit: false }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      backups.collectGarbage(request.params.id, request.body ?? {}, actor, requestId),
    ),
  );

  serve(app, listBackups, { scope: 'filtered' }, async (request) => {
    // Only backups of VMs the caller may read backups of.
    const readable = access.filter(principalOf(request), 'backup.read');
    const { vm, repository, state } = request.query;
    const vmId = vm ? inventory.resolve('vm', vm, (o) => readable(o.id)).id : undefined;
    const repositoryId = repository ? (await backups.findRepository(repository)).id : undefined;
    const items = await backups.list({
      ...(vmId ? { vmId } : {}),
      ...(repositoryId ? { repositoryId } : {}),
      ...(state ? { state } : {}),
    });
    return { items: items.filter((backup) => readable(backup.vmId)) };
  });
  serve(app, getBackup, { scope: [...onBackup] }, async (request) =>
    backups.get(request.params.id),
  );
  serve(
    app,
    deleteBackup,
    { audit: 'backup.delete', scope: [...onBackup] },
    async (request, reply) => {
      await backups.remove(request.params.id);
      return noContent(reply);
    },
  );
  serve(
    app,
    backUpVm,
    { audit: false, scope: [{ param: 'id', kind: 'vm' }] },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        backups.backUp(request.params.id, request.body.repository, actor, requestId),
      ),
  );
  // A restore makes a VM on the host: the permission is needed on the backup's VM and on the
  // host; over the original, on the backup's VM and on the VM it replaces (the same one).
  serve(
    app,
    restoreBackup,
    {
      audit: false,
      scope: [...onBackup, { body: 'host', kind: 'host' }, { body: 'replace', kind: 'vm' }],
    },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        backups.restore(
          request.params.id,
          {
            ...(request.body.host !== undefined ? { host: request.body.host } : {}),
            ...(request.body.name ? { name: request.body.name } : {}),
            ...(request.body.group ? { group: request.body.group } : {}),
            ...(request.body.replace !== undefined ? { replace: request.body.replace } : {}),
          },
          actor,
          requestId,
        ),
      ),
  );
  // One disk into a VM: backup.restore on the backup's VM (the scope), and the right to change the
  // VM it goes into (vm.create, as reconfiguring it needs), so that restoring a backup reaches no
  // VM its restorer could not change. A VM the caller cannot see is not found.
  serve(app, restoreBackupDisk, { audit: false, scope: [...onBackup] }, async (request, reply) => {
    const principal = principalOf(request);
    const named = request.body.vm;
    const vmId =
      named === undefined
        ? (await backups.get(request.params.id)).vmId
        : inventory.resolve(
            'vm',
            named,
            (o) =>
              access.decide(principal, 'inventory.read', o.id).allowed ||
              access.decide(principal, 'vm.create', o.id).allowed,
          ).id;
    if (!access.decide(principal, 'vm.create', vmId).allowed)
      throw new ZenithError(
        'ZEN_FORBIDDEN',
        `${principal.name} may not vm.create on the VM the disk goes into: restoring a disk into a VM changes it`,
        { permission: 'vm.create', role: principal.role },
      );
    return acceptTask(request, reply, (actor, requestId) =>
      backups.restoreDisk(
        request.params.id,
        request.params.diskId,
        {
          vm: vmId,
          ...(request.body.replace !== undefined ? { replace: request.body.replace } : {}),
        },
        actor,
        requestId,
      ),
    );
  });
  // The disk's data leaves Zenith: the permission of a restore, and audited as every POST.
  serve(
    app,
    downloadBackupDisk,
    { audit: 'backup.download', scope: [...onBackup] },
    async (request, reply) => {
      const { sizeBytes, fileName, bytes } = await backups.download(
        request.params.id,
        request.params.diskId,
        request.query.format,
      );
      return (
        reply
          .type('application/octet-stream')
          .header('content-length', String(sizeBytes))
          .header('content-disposition', `attachment; filename="${fileName}"`)
          // Fastify streams a Readable as it comes; the schema types the answer as the bytes it is.
          .send(Readable.from(bytes, { objectMode: false }) as unknown as string)
      );
    },
  );
  // A browser's download: a ticket asked for with the token, then a plain GET with the ticket only.
  serve(
    app,
    createBackupDownloadTicket,
    { audit: 'backup.download.ticket', scope: [...onBackup] },
    async (request, reply) =>
      reply
        .status(201)
        .send(
          await downloads.issue(
            request.params.id,
            request.params.diskId,
            request.body.format ?? 'raw',
            principalOf(request),
          ),
        ),
  );
  // The ticket in the path is the credential: a public route, audited here as the ticket's user.
  serve(app, downloadWithTicket, {}, async (request, reply) => {
    const { backupId, diskId, format, actor } = await downloads.redeem(request.params.ticket);
    const { sizeBytes, fileName, bytes } = await backups.download(backupId, diskId, format);
    // The trail fails closed, as for every POST: no record, no disk leaves.
    await audit
      .append([
        {
          actor,
          action: 'backup.download',
          targetId: backupId,
          params: { diskId, format, by: 'ticket' },
          result: 'succeeded',
          requestId: request.id,
        },
      ])
      .catch((error: unknown) => {
        request.log.error({ err: error }, 'audit append failed: the download is refused');
        throw new ZenithError(
          'ZEN_AUDIT_UNAVAILABLE',
          'the audit trail cannot be written now, so the download is refused; ask for a new ticket later',
        );
      });
    return reply
      .type('application/octet-stream')
      .header('content-length', String(sizeBytes))
      .header('content-disposition', `attachment; filename="${fileName}"`)
      .send(Readable.from(bytes, { objectMode: false }) as unknown as string);
  });
  // A restore test makes (and removes) a VM on the host: as a restore, on the backup's VM and the host.
  serve(
    app,
    testBackup,
    { audit: false, scope: [...onBackup, { body: 'host', kind: 'host' }] },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        backups.restoreTest(
          request.params.id,
          {
            host: request.body.host,
            ...(request.body.marker ? { marker: request.body.marker } : {}),
            ...(request.body.timeoutSeconds ? { timeoutSeconds: request.body.timeoutSeconds } : {}),
            ...(request.body.group ? { group: request.body.group } : {}),
          },
          actor,
          requestId,
        ),
      ),
  );
}
