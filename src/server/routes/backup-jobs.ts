import {
  backupJobSelection,
  createBackupJob,
  deleteBackupJob,
  getBackupJob,
  listBackupJobs,
  runBackupJob,
  updateBackupJob,
} from '../../api/backup-jobs.js';
import { ZenithError } from '../../core/errors.js';
import type { BackupJobs } from '../../services/backup/backup-jobs.js';
import type { AccessService } from '../../services/identity/access-service.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';
import { acceptTask } from '../task-reply.js';

export interface BackupJobRouteServices {
  backupJobs: BackupJobs;
  access: AccessService;
}

/**
 * A job stands for its scope: reading, changing and running it need the permission there (a job on
 * everything, everywhere). Making or moving one needs backup.manage on the new scope as well, and
 * the service refuses a caller without backup.run there (the job would be given it).
 */
export async function backupJobRoutes(
  app: Api,
  { backupJobs, access }: BackupJobRouteServices,
): Promise<void> {
  const onJob = [{ param: 'id', kind: 'backupJob' }] as const;

  serve(app, listBackupJobs, { scope: 'filtered' }, async (request) => {
    const principal = principalOf(request);
    const jobs = await backupJobs.list();
    return {
      items: jobs.filter(
        (job) => access.decide(principal, 'backup.read', job.scope?.id ?? null).allowed,
      ),
    };
  });
  serve(
    app,
    createBackupJob,
    { audit: 'backupJob.create', scope: [{ body: 'scope', kind: 'any' }] },
    async (request, reply) => {
      const principal = principalOf(request);
      const job = await backupJobs.create(request.body, principal);
      return reply.status(201).send(job);
    },
  );
  serve(app, getBackupJob, { scope: [...onJob] }, async (request) =>
    backupJobs.get(request.params.id),
  );
  serve(
    app,
    updateBackupJob,
    { audit: 'backupJob.update', scope: [...onJob, { body: 'scope', kind: 'any' }] },
    async (request) => {
      const principal = principalOf(request);
      // A job moved to everything needs backup.manage on everything (a null scope names no object).
      if (request.body.scope === null && !access.decide(principal, 'backup.manage', null).allowed)
        throw new ZenithError(
          'ZEN_FORBIDDEN',
          `${principal.name} may not backup.manage everywhere: a job on everything needs it`,
          { permission: 'backup.manage', role: principal.role },
        );
      return backupJobs.update(request.params.id, request.body, principal);
    },
  );
  serve(app, deleteBackupJob, { audit: 'backupJob.delete', scope: [...onJob] }, async (request) =>
    backupJobs.remove(request.params.id),
  );
  serve(app, runBackupJob, { audit: false, scope: [...onJob] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      backupJobs.runNow(request.params.id, actor, requestId),
    ),
  );
  serve(app, backupJobSelection, { scope: [...onJob] }, async (request) =>
    backupJobs.selection(request.params.id),
  );
}
