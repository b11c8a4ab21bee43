/** What the backups commands share: a backup's scope, and a task waited for with a line of its result. */
import type { BackupView } from '../../api/backups.js';
import { ApiClient } from '../client.js';
import { printJson } from '../output.js';
import { runTask, waitForTask, type TaskSummary } from '../progress.js';
import type { Globals } from './globals.js';

/** Incremental when a disk was read against the last backup's checkpoint, full otherwise. */
export function scopeOf(backup: BackupView): string {
  return backup.disks.some((disk) => disk.scope === 'changed') ? 'incremental' : 'full';
}

/**
 * runTask, and once the task succeeded a line of what it did (its result) on standard output:
 * the backup made, the VM restored, what verify found.
 */
export async function runTaskAndSay(
  globals: Globals,
  path: string,
  body: unknown,
  wait: boolean,
  say: (result: Record<string, unknown>) => string,
): Promise<void> {
  if (!wait) return runTask(globals, 'POST', path, body, false);
  const client = ApiClient.fromConfig(globals);
  const task = await client.post<TaskSummary>(path, body);
  const done = await waitForTask(client, task.id, { quiet: globals.json === true });
  if (globals.json) return printJson(done);
  process.stderr.write(`${done.kind} succeeded (${done.id})\n`);
  process.stdout.write(`${say((done.result ?? {}) as Record<string, unknown>)}\n`);
}
