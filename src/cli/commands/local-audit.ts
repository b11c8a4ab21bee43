/**
 * `zenith audit verify --data-dir/--database`: the audit chain checked on the store itself, without
 * a server. One of the CLI's few files that run a part of Zenith in its own process (with serve
 * and agent); every other command speaks to a server through the contract (src/api).
 */
import { resolve } from 'node:path';
import { systemClock } from '../../core/clock.js';
import { AuditService } from '../../services/audit/audit-service.js';
import { openStore } from '../../store/store.js';

export async function verifyStoredAudit(options: {
  dataDir?: string | undefined;
  database?: string | undefined;
}): ReturnType<AuditService['verify']> {
  const store = await openStore({
    dataDir: options.dataDir ? resolve(options.dataDir) : undefined,
    databaseUrl: options.database,
  });
  try {
    return await new AuditService(store, systemClock).verify();
  } finally {
    await store.close();
  }
}
