/**
 * The audit trail: appends per second (one record per transaction, as a
 * request does, and in batches of 100), then the time to verify a chain of
 * 1,000,000 records, with SQLite and PostgreSQL.
 *
 *   node --import tsx bench/audit-chain.ts [--records 1000000] [--store sqlite|postgres|both]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/core/clock.js';
import { AuditService, type AuditInput } from '../src/services/audit/audit-service.js';
import { openStore } from '../src/store/store.js';
import { createTestDatabase } from '../src/testing/postgres.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    store: { type: 'string', default: 'both' },
  },
});
const total = Number(values.records);

const input = (i: number): AuditInput => ({
  actor: { id: 'usr_01BENCH0000000000000000000', kind: 'user', name: 'bench' },
  action: 'vm.start',
  targetId: `vm_${String(i).padStart(26, '0')}`,
  params: { taskId: `task_${i}`, attempt: 1 },
  result: 'succeeded',
  requestId: `req_${i}`,
});

async function measure(kind: 'sqlite' | 'postgres'): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'zenith-bench-audit-'));
  const database = kind === 'postgres' ? await createTestDatabase() : undefined;
  const store = await openStore({ dataDir, databaseUrl: database?.url });
  const audit = new AuditService(store, systemClock);
  try {
    console.log(`\n[${kind}]`);
    let n = 0;
    let started = performance.now();
    while (performance.now() - started < 5000) await audit.append([input(n++)]);
    const single = n / ((performance.now() - started) / 1000);
    console.log(`  appends, one record per transaction: ${Math.round(single)} records/s`);
    started = performance.now();
    const batchStart = n;
    while (performance.now() - started < 5000) {
      await audit.append(Array.from({ length: 100 }, () => input(n++)));
    }
    console.log(
      `  appends, 100 records per transaction: ${Math.round((n - batchStart) / ((performance.now() - started) / 1000))} records/s`,
    );
    started = performance.now();
    while (n < total) {
      const size = Math.min(5000, total - n);
      await audit.append(Array.from({ length: size }, () => input(n++)));
    }
    console.log(
      `  filled the chain to ${n} records in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    const result = await audit.verify();
    console.log(
      `  verify ${result.records} records: ${(result.durationMs / 1000).toFixed(2)} s (${Math.round(result.records / (result.durationMs / 1000))} records/s), ok=${result.ok}`,
    );
  } finally {
    await store.close();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

console.log(`Zenith audit-chain benchmark, node ${process.version}, ${new Date().toISOString()}`);
for (const kind of values.store === 'both'
  ? (['sqlite', 'postgres'] as const)
  : [values.store as 'sqlite' | 'postgres'])
  await measure(kind);
