/** zenith access report effective|changes|actions: compliance reports as a table, CSV or JSON. */
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printTable } from '../output.js';
import { instant } from './parse-instant.js';
import type { Globals } from './globals.js';

interface EffectiveRow {
  identityName: string;
  permission: string;
  scopeName: string;
  bindingId: string;
  role: string;
  viaGroups: string[];
}
interface AuditRow {
  seq: number;
  ts: number;
  actorName: string;
  action: string;
  targetId: string | null;
  result: string;
  errorCode: string | null;
}

async function fetchReport<T>(
  command: Command,
  path: string,
  params: URLSearchParams,
  format: string,
  printRows: (rows: T[]) => void,
): Promise<void> {
  const globals = command.optsWithGlobals<Globals>();
  const api = ApiClient.fromConfig(globals);
  if (format === 'csv') {
    params.set('format', 'csv');
    process.stdout.write(await api.getText(`${path}?${params.toString()}`));
    return;
  }
  const report = await api.get<{ items: T[] }>(`${path}?${params.toString()}`);
  if (globals.json || format === 'json') return printJson(report);
  printRows(report.items);
}

function printAudit(rows: AuditRow[]): void {
  printTable(
    ['SEQ', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'RESULT'],
    rows.map((r) => [
      r.seq,
      formatTime(r.ts),
      r.actorName,
      r.action,
      r.targetId ?? '-',
      r.errorCode ? `${r.result} (${r.errorCode})` : r.result,
    ]),
  );
}

export function registerAccessReport(access: Command): void {
  const report = access
    .command('report')
    .description('Compliance reports (audit.read): effective access, access changes, actions');
  report
    .command('effective')
    .description(
      'Who holds which permission where, flattened through nested groups, with the binding and groups',
    )
    .option('--identity <identity>', 'only this user or service identity')
    .option('--permission <permission>', 'only this permission')
    .option('--scope <object>', 'only grants that reach this object')
    .option('--format <format>', 'table | csv | json', 'table')
    .action(
      async (
        options: { identity?: string; permission?: string; scope?: string; format: string },
        command: Command,
      ) => {
        const { format, ...filter } = options;
        await fetchReport<EffectiveRow>(
          command,
          '/access/reports/effective',
          new URLSearchParams(filter as Record<string, string>),
          format,
          (rows) =>
            printTable(
              ['IDENTITY', 'PERMISSION', 'SCOPE', 'ROLE', 'BINDING', 'VIA GROUPS'],
              rows.map((r) => [
                r.identityName,
                r.permission,
                r.scopeName,
                r.role,
                r.bindingId,
                r.viaGroups.join(' > ') || '-',
              ]),
            ),
        );
      },
    );
  report
    .command('changes')
    .description(
      'Changes to access in a period (groups, members, roles, bindings, identities, quotas)',
    )
    .requiredOption('--from <date>', 'start (ISO 8601 or ms), inclusive')
    .requiredOption('--to <date>', 'end (ISO 8601 or ms), exclusive')
    .option('--format <format>', 'table | csv | json', 'table')
    .action(async (options: { from: string; to: string; format: string }, command: Command) =>
      fetchReport<AuditRow>(
        command,
        '/access/reports/changes',
        new URLSearchParams({
          from: String(instant(options.from, '--from')),
          to: String(instant(options.to, '--to')),
        }),
        options.format,
        printAudit,
      ),
    );
  report
    .command('actions <identity>')
    .description('Everything IDENTITY did or tried in a period, from the audit trail')
    .requiredOption('--from <date>', 'start (ISO 8601 or ms), inclusive')
    .requiredOption('--to <date>', 'end (ISO 8601 or ms), exclusive')
    .option('--format <format>', 'table | csv | json', 'table')
    .action(
      async (
        identity: string,
        options: { from: string; to: string; format: string },
        command: Command,
      ) =>
        fetchReport<AuditRow>(
          command,
          '/access/reports/actions',
          new URLSearchParams({
            identity,
            from: String(instant(options.from, '--from')),
            to: String(instant(options.to, '--to')),
          }),
          options.format,
          printAudit,
        ),
    );
}
