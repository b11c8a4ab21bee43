/** `zenith audit`: the audit trail, listed from the server or verified (also offline, from the store). */
import type { Command } from 'commander';
import type { listAudit } from '../../api/audit.js';
import type { AnswerOf } from '../../api/operation.js';
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson } from '../output.js';
import { verifyStoredAudit } from './local-audit.js';
import { addListCommand, type Globals } from './globals.js';

interface VerifyResult {
  ok: boolean;
  records: number;
  firstBad?: { seq: number; problem: string; detail: string };
  durationMs: number;
}

interface AuditListOptions {
  actor?: string;
  target?: string;
  action?: string;
  limit: string;
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('The tamper-evident audit trail');
  addListCommand<AnswerOf<typeof listAudit>, AuditListOptions>(audit, {
    description: 'Recent audit records, newest first',
    path: (options) => {
      const query = new URLSearchParams({
        limit: options.limit,
        ...(options.actor ? { actorId: options.actor } : {}),
        ...(options.target ? { targetId: options.target } : {}),
        ...(options.action ? { action: options.action } : {}),
      });
      return `/audit?${query.toString()}`;
    },
    headers: ['SEQ', 'TIME', 'WHO', 'ACTION', 'TARGET', 'RESULT'],
    row: (r) => [
      r.seq,
      formatTime(r.ts),
      `${r.actorName} (${r.actorKind})`,
      r.action,
      r.targetId,
      r.errorCode ? `${r.result} ${r.errorCode}` : r.result,
    ],
  })
    .option('--actor <id>', 'only this identity')
    .option('--target <id>', 'only this object')
    .option('--action <prefix>', 'only actions starting with this')
    .option('--limit <n>', 'how many', '50');
  audit
    .command('verify')
    .description(
      'Re-compute the hash chain and name the first record that was edited, deleted or reordered',
    )
    .option('--data-dir <dir>', 'verify the store directly (server not needed)')
    .option('--database <url>', 'verify a PostgreSQL store directly')
    .action(async (options: { dataDir?: string; database?: string }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      let result: VerifyResult;
      if (options.dataDir || options.database) {
        result = await verifyStoredAudit(options);
      } else {
        result = await ApiClient.fromConfig(globals).post<VerifyResult>('/audit/verify');
      }
      if (globals.json) printJson(result);
      if (!result.ok) {
        throw new ZenithError(
          'ZEN_AUDIT_CHAIN_BROKEN',
          `audit chain broken at record ${result.firstBad!.seq} (${result.firstBad!.problem}): ${result.firstBad!.detail}`,
          { ...result.firstBad },
        );
      }
      if (!globals.json)
        process.stdout.write(
          `audit chain intact: ${result.records} records verified in ${Math.round(result.durationMs)} ms\n`,
        );
    });
}
