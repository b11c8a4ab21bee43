/** Every operation of the API by name: the server serves each once, and a test holds it to that. */
import * as access from './access.js';
import * as accessReports from './access-reports.js';
import * as accounting from './accounting.js';
import * as agents from './agents.js';
import * as audit from './audit.js';
import * as auth from './auth.js';
import * as backupJobs from './backup-jobs.js';
import * as backups from './backups.js';
import * as connections from './connections.js';
import * as consoles from './consoles.js';
import * as events from './events.js';
import * as ha from './ha.js';
import * as haAdmission from './ha-admission.js';
import * as images from './images.js';
import * as inventory from './inventory.js';
import * as machines from './machines.js';
import * as metrics from './metrics.js';
import type { OperationSpec } from './operation.js';
import * as placement from './placement.js';
import * as policies from './policies.js';
import * as quotas from './quotas.js';
import * as replication from './replication.js';
import * as snapshots from './snapshots.js';
import * as system from './system.js';
import * as tasks from './tasks.js';
import * as tokens from './tokens.js';
import * as users from './users.js';
import * as vms from './vms.js';

type OperationsOf<M> = { [K in keyof M as M[K] extends OperationSpec ? K : never]: M[K] };

const isOperation = (value: unknown): value is OperationSpec =>
  typeof value === 'object' &&
  value !== null &&
  'method' in value &&
  'path' in value &&
  'auth' in value &&
  'success' in value;

function operationsOf<M extends object>(module: M): OperationsOf<M> {
  return Object.fromEntries(
    Object.entries(module).filter(([, value]) => isOperation(value)),
  ) as OperationsOf<M>;
}

export const operations = {
  ...operationsOf(system),
  ...operationsOf(auth),
  ...operationsOf(users),
  ...operationsOf(tokens),
  ...operationsOf(inventory),
  ...operationsOf(vms),
  ...operationsOf(metrics),
  ...operationsOf(snapshots),
  ...operationsOf(images),
  ...operationsOf(backups),
  ...operationsOf(backupJobs),
  ...operationsOf(replication),
  ...operationsOf(consoles),
  ...operationsOf(tasks),
  ...operationsOf(events),
  ...operationsOf(connections),
  ...operationsOf(access),
  ...operationsOf(accessReports),
  ...operationsOf(quotas),
  ...operationsOf(audit),
  ...operationsOf(agents),
  ...operationsOf(accounting),
  ...operationsOf(policies),
  ...operationsOf(ha),
  ...operationsOf(haAdmission),
  ...operationsOf(placement),
  ...operationsOf(machines),
};

export type Operations = typeof operations;
export type OperationName = keyof Operations;
