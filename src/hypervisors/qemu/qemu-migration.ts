/**
 * The source side of a live migration once QEMU was told where to send the
 * VM: following `query-migrate` to the switch-over with progress, and the
 * port a destination QEMU listens on. (The orchestration between two agents
 * is services/vms/agent-migration.ts.)
 */
import { createServer } from 'node:net';
import { ZenithError } from '../../core/errors.js';
import type { ActionContext } from '../driver.js';
import type { QemuVm } from './qemu-vm.js';

/** Starts `migrate` to `uri` and waits for it to complete, fail or be cancelled (context.signal). */
export async function followMigration(
  vm: QemuVm,
  uri: string,
  context: ActionContext,
): Promise<{ totalTimeMs: number; downtimeMs: number | null; transferredBytes: number }> {
  const qmp = vm.qmp();
  const started = performance.now();
  await qmp.execute('migrate', { uri });
  for (;;) {
    if (context.signal.aborted) {
      await qmp.execute('migrate_cancel').catch(() => undefined);
      throw new ZenithError(
        'ZEN_TASK_CANCELLED',
        'the migration was cancelled; the VM stays on its host',
      );
    }
    const info = await qmp.execute('query-migrate');
    if (info.status === 'completed') {
      return {
        // QEMU at times reports these as 0 or leaves them out; the wall time seen here is the honest fallback.
        totalTimeMs: info['total-time'] || Math.round(performance.now() - started),
        downtimeMs: info.downtime ?? null,
        transferredBytes: info.ram?.transferred ?? 0,
      };
    }
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new ZenithError(
        'ZEN_DRIVER_ERROR',
        `the migration ${info.status}: ${info['error-desc'] ?? 'no reason given'}; the VM stays on its host`,
      );
    }
    const ram = info.ram;
    if (ram) {
      const percent = Math.min(
        99,
        Math.round((100 * ram.transferred) / Math.max(1, ram.transferred + ram.remaining)),
      );
      context.progress({
        percent,
        message: `pass ${ram['dirty-sync-count']}`,
        details: {
          bytesSent: ram.transferred,
          bytesRemaining: ram.remaining,
          dirtyPagesRate: ram['dirty-pages-rate'],
        },
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A TCP port free on `host` right now (for a destination QEMU to listen on). */
export function freeTcpPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
