/** zenith accounting: rate cards, VM ownership, usage and cost reports, showback. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printTable } from '../output.js';
import { instant } from './parse-instant.js';
import type { CostBreakdown, listRateCards, OwnershipRecord } from '../../api/accounting.js';
import type { AnswerOf } from '../../api/operation.js';
import { addListCommand, printAnswer, type Globals } from './globals.js';

type Cost = CostBreakdown;

interface ReportAnswer {
  currency: string | null;
  minorDigits: number;
  rateCards: Array<{ version: number }>;
  rows: Array<{
    bucketStart: number;
    label: string;
    vms: number;
    vcpuMs: number;
    cost: Cost;
    energyKWh?: number;
  }>;
  totals: Cost;
  /** Only when a rate card prices energy. */
  energy?: Array<{ hostName: string; kWh: number; cost: number; unsharedCost: number }>;
}

function money(minor: number, digits: number): string {
  if (digits === 0) return String(minor);
  const text = String(Math.abs(minor)).padStart(digits + 1, '0');
  return `${minor < 0 ? '-' : ''}${text.slice(0, -digits)}.${text.slice(-digits)}`;
}

export function registerAccounting(program: Command): void {
  const accounting = program.command('accounting').description('Usage, cost and chargeback');
  const rates = accounting.command('rates').description('Rate card versions');
  addListCommand<AnswerOf<typeof listRateCards>>(rates, {
    description: 'List rate card versions',
    path: '/accounting/rate-cards',
    headers: ['VERSION', 'EFFECTIVE FROM', 'CURRENCY', 'TIME ZONE', 'RULES', 'ID'],
    row: (c) => [
      c.version,
      formatTime(c.effectiveFrom),
      c.body.currency,
      c.body.timeZone,
      c.body.rates.length,
      c.id,
    ],
  });
  rates
    .command('show <version>')
    .description('Show one version (by number or id) as JSON')
    .action(async (version: string, _options: unknown, command: Command) =>
      printAnswer(command, 'GET', `/accounting/rate-cards/${encodeURIComponent(version)}`),
    );
  rates
    .command('add <file>')
    .description(
      'Add a version from a JSON file (currency, timeZone, windows, rates, fixed, discounts)',
    )
    .option(
      '--effective-from <date>',
      'when it takes effect (ISO 8601; default: the file, else now)',
    )
    .action(async (file: string, options: { effectiveFrom?: string }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const body = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      if (options.effectiveFrom)
        body.effectiveFrom = instant(options.effectiveFrom, '--effective-from');
      body.effectiveFrom ??= Date.now();
      const card = await ApiClient.fromConfig(globals).post<{
        id: string;
        version: number;
        effectiveFrom: number;
      }>('/accounting/rate-cards', body);
      if (globals.json) return printJson(card);
      console.log(
        `rate card version ${card.version} (${card.id}) takes effect ${formatTime(card.effectiveFrom)}`,
      );
    });

  accounting
    .command('owner <vm>')
    .description(
      'Show the ownership history of a VM, or change it with --owner/--group/--cost-center',
    )
    .option('--owner <name>')
    .option('--group <name>')
    .option('--cost-center <name>')
    .action(
      async (
        vm: string,
        options: { owner?: string; group?: string; costCenter?: string },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const client = ApiClient.fromConfig(globals);
        const path = `/vms/${encodeURIComponent(vm)}/ownership`;
        const change = Object.fromEntries(
          Object.entries(options).filter(([, v]) => v !== undefined),
        );
        if (Object.keys(change).length > 0) await client.request('PUT', path, change);
        const history = await client.get<{ items: OwnershipRecord[] }>(path);
        if (globals.json) return printJson(history);
        printTable(
          ['OWNER', 'GROUP', 'COST CENTER', 'FROM', 'TO', 'CHANGED BY'],
          history.items.map((o) => [
            o.owner,
            o.group,
            o.costCenter,
            formatTime(o.from),
            o.to === null ? '-' : formatTime(o.to),
            o.changedBy,
          ]),
        );
      },
    );

  accounting
    .command('report')
    .description(
      'Usage and cost for a period, grouped by vm, owner, group, costCenter, cluster, host or hypervisor',
    )
    .requiredOption('--from <date>', 'start (ISO 8601)')
    .requiredOption('--to <date>', 'end, exclusive (ISO 8601)')
    .option(
      '--group-by <dimension>',
      'vm | owner | group | costCenter | cluster | host | hypervisor',
      'vm',
    )
    .option('--granularity <g>', 'hourly | daily | monthly', 'daily')
    .option('--tz <zone>', 'IANA time zone of the buckets', 'UTC')
    .option('--format <format>', 'table | csv | json', 'table')
    .option('--vm <vm>', 'only this VM (name or id)')
    .option('--owner <name>', 'only the time VMs had this owner')
    .option('--group <name>', 'only the time VMs belonged to this group')
    .option('--cost-center <name>', 'only the time VMs were on this cost center')
    .action(
      async (
        options: {
          from: string;
          to: string;
          groupBy: string;
          granularity: string;
          tz: string;
          format: string;
          vm?: string;
          owner?: string;
          group?: string;
          costCenter?: string;
        },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const client = ApiClient.fromConfig(globals);
        const params = new URLSearchParams({
          from: String(instant(options.from, '--from')),
          to: String(instant(options.to, '--to')),
          groupBy: options.groupBy,
          granularity: options.granularity,
          timeZone: options.tz,
        });
        for (const key of ['vm', 'owner', 'group', 'costCenter'] as const) {
          const value = options[key];
          if (value !== undefined) params.set(key, value);
        }
        if (options.format === 'csv') {
          params.set('format', 'csv');
          process.stdout.write(await client.getText(`/accounting/report?${params.toString()}`));
          return;
        }
        const report = await client.get<ReportAnswer>(`/accounting/report?${params.toString()}`);
        if (globals.json || options.format === 'json') return printJson(report);
        const m = (minor: number) => money(minor, report.minorDigits);
        // Energy columns only when a rate card prices energy (the report then carries them).
        const energy = report.energy !== undefined;
        printTable(
          [
            'BUCKET',
            options.groupBy.toUpperCase(),
            'VMS',
            'VCPU-H',
            ...(energy ? ['KWH', 'ENERGY'] : []),
            'DISCOUNT',
            `TOTAL ${report.currency ?? ''}`.trim(),
          ],
          report.rows.map((r) => [
            formatTime(r.bucketStart),
            r.label,
            r.vms,
            (r.vcpuMs / 3_600_000).toFixed(2),
            ...(energy ? [(r.energyKWh ?? 0).toFixed(3), m(r.cost.energy ?? 0)] : []),
            m(r.cost.discount),
            m(r.cost.total),
          ]),
        );
        if (report.energy && report.energy.length > 0) {
          process.stdout.write('\n');
          printTable(
            ['HOST', 'MACHINE KWH', `ENERGY ${report.currency ?? ''}`.trim(), 'NOT SHARED'],
            report.energy.map((h) => [h.hostName, h.kWh.toFixed(3), m(h.cost), m(h.unsharedCost)]),
          );
        }
        console.log(
          `total ${m(report.totals.total)} ${report.currency ?? ''}; rate card versions: ${report.rateCards.map((c) => c.version).join(', ') || 'none'}`,
        );
      },
    );

  accounting
    .command('showback')
    .description('Cost per group for a period')
    .requiredOption('--from <date>', 'start (ISO 8601)')
    .requiredOption('--to <date>', 'end, exclusive (ISO 8601)')
    .action(async (options: { from: string; to: string }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const params = new URLSearchParams({
        from: String(instant(options.from, '--from')),
        to: String(instant(options.to, '--to')),
      });
      const answer = await ApiClient.fromConfig(globals).get<{
        currency: string | null;
        minorDigits: number;
        groups: Array<{ key: string; vms: number; cost: Cost }>;
        totals: Cost;
      }>(`/accounting/showback?${params.toString()}`);
      if (globals.json) return printJson(answer);
      const m = (minor: number) => money(minor, answer.minorDigits);
      printTable(
        [
          'GROUP',
          'VMS',
          'COMPUTE',
          'MEMORY',
          'DISK',
          'FIXED',
          'DISCOUNT',
          `TOTAL ${answer.currency ?? ''}`.trim(),
        ],
        answer.groups.map((g) => [
          g.key,
          g.vms,
          m(g.cost.vcpu),
          m(g.cost.memory),
          m(g.cost.disk),
          m(g.cost.fixed),
          m(g.cost.discount),
          m(g.cost.total),
        ]),
      );
    });
}
