import type { Kysely } from 'kysely';
import * as m0001 from './0001-initial.js';
import * as m0004 from './0004-agents.js';
import * as m0005 from './0005-task-progress-details.js';
import * as m0006accounting from './0006-accounting.js';
import * as m0006 from './0006-access.js';
import * as m0006policies from './0006-policies.js';
import * as m0007 from './0007-directory-users.js';
import * as m0007plans from './0007-placement-plans.js';
import * as m0008certificates from './0008-agent-certificates.js';
import * as m0008metrics from './0008-metric-samples.js';
import * as m0008quotas from './0008-quotas.js';
import * as m0008allocations from './0008-vm-allocations.js';
import * as m0009 from './0009-connection-identity.js';
import * as m0010 from './0010-machines.js';
import * as m0011 from './0011-machine-sensor-samples.js';
import * as m0012 from './0012-high-availability.js';
import * as m0013 from './0013-ha-vm-monitoring.js';
import * as m0014 from './0014-backup.js';
import * as m0015 from './0015-backup-jobs.js';
import * as m0016 from './0016-backup-job-restore-tests.js';
import * as m0017 from './0017-replication.js';
import * as m0018 from './0018-replica-leftovers.js';
import * as m0019 from './0019-sync-replication.js';
import * as m0020 from './0020-images.js';

import type { MigrationContext } from './context.js';

export type { Dialect, MigrationContext } from './context.js';

export interface ZenithMigration {
  name: string;
  up(db: Kysely<unknown>, context: MigrationContext): Promise<void>;
}

/** Every migration, in order. Append only: never edit, reorder or remove an entry. */
export const migrations: readonly ZenithMigration[] = [
  { name: '0001-initial', up: m0001.up },
  { name: '0004-agents', up: m0004.up },
  { name: '0005-task-progress-details', up: m0005.up },
  { name: '0006-access', up: m0006.up },
  { name: '0006-accounting', up: m0006accounting.up },
  { name: '0006-policies', up: m0006policies.up },
  { name: '0007-directory-users', up: m0007.up },
  { name: '0007-placement-plans', up: m0007plans.up },
  { name: '0008-agent-certificates', up: m0008certificates.up },
  { name: '0008-metric-samples', up: m0008metrics.up },
  { name: '0008-quotas', up: m0008quotas.up },
  { name: '0008-vm-allocations', up: m0008allocations.up },
  { name: '0009-connection-identity', up: m0009.up },
  { name: '0010-machines', up: m0010.up },
  { name: '0011-machine-sensor-samples', up: m0011.up },
  { name: '0012-high-availability', up: m0012.up },
  { name: '0013-ha-vm-monitoring', up: m0013.up },
  { name: '0014-backup', up: m0014.up },
  { name: '0015-backup-jobs', up: m0015.up },
  { name: '0016-backup-job-restore-tests', up: m0016.up },
  { name: '0017-replication', up: m0017.up },
  { name: '0018-replica-leftovers', up: m0018.up },
  { name: '0019-sync-replication', up: m0019.up },
  { name: '0020-images', up: m0020.up },
];
