/** `zenith replication`: protect VMs to another site, see their RPO and points in time, report. */
import type { Command } from 'commander';
import type { AnswerOf } from '../../api/operation.js';
import type { getReplication, listReplications, replicationReport } from '../../api/replication.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printKeyValues, printTable } from '../output.js';
import { runTaskAndSay } from './backup-views.js';
import { addListCommand, addShowCommand, type Globals } from './globals.js';
import { optionalWholeNumber } from './parse-number.js';

type Replication = AnswerOf<typeof getReplication>;

const rpoText = (r: Replication) =>
  r.currentRpoSeconds === null ? '-' : `${Math.round(r.currentRpoSeconds)} s`;

interface SettingOptions {
  rpo?: string;
  interval?: string;
  keep?: string;
}

function settings(options: SettingOptions) {
  const rpoSeconds = optionalWholeNumber('--rpo', options.rpo);
  const intervalSeconds = optionalWholeNumber('--interval', options.interval);
  const keepPoints = optionalWholeNumber('--keep', options.keep);
  return {
    ...(rpoSeconds !== undefined ? { rpoSeconds } : {}),
    ...(intervalSeconds !== undefined ? { intervalSeconds } : {}),
    ...(keepPoints !== undefined ? { keepPoints } : {}),
  };
}

/** interval, or sync with where its mirror stands (and why it was lost). */
const modeText = (r: Replication) =>
  r.sync
    ? `sync: ${r.sync.state ?? 'not set up yet'}${r.sync.since ? ` since ${formatTime(r.sync.since)}` : ''}${r.sync.error ? ` (${r.sync.error.code}: ${r.sync.error.message})` : ''}`
    : 'interval';

/** The replica's host, and its site when it has one. */
const targetText = (r: Replication) =>
  `${r.targetHost.name}${r.targetSite ? ` (${r.targetSite.name})` : ''}`;

const vmPath = (vm: string) => `/vms/${encodeURIComponent(vm)}/replication`;

export function registerReplication(program: Command): void {
  const replication = program
    .command('replication')
    .description('Replicated VMs: where their replicas are, their RPO, their points in time');
  addListCommand<AnswerOf<typeof listReplications>>(replication, {
    description: 'List the replicated VMs with their current RPO',
    path: '/replications',
    headers: ['VM', 'TO', 'STATE', 'MODE', 'RPO', 'TARGET', 'POINTS', 'LAST POINT'],
    row: (r) => [
      r.vm.name,
      targetText(r),
      `${r.state}${r.lastCycleError ? ` (last cycle: ${r.lastCycleError.code})` : ''}`,
      r.sync ? `sync (${r.sync.state ?? 'pending'})` : 'interval',
      `${rpoText(r)}${r.rpoExceeded ? ' (over)' : ''}`,
      `${r.rpoSeconds} s`,
      r.points.filter((p) => p.state === 'ready').length,
      formatTime(r.points.find((p) => p.state === 'ready')?.takenAt ?? null),
    ],
  });
  addShowCommand<Replication>(replication, {
    usage: 'show <vm>',
    description: "One VM's replication and its points in time",
    path: vmPath,
    print: (shown) => {
      printKeyValues([
        ['vm', `${shown.vm.name} (${shown.vm.id})`],
        ['from site', shown.sourceSite?.name ?? null],
        ['to', targetText(shown)],
        ['directory', shown.directory],
        ['state', shown.state],
        ['mode', modeText(shown)],
        [
          'rpo',
          `${rpoText(shown)} (target ${shown.rpoSeconds} s${shown.rpoExceeded ? ', over' : ''})`,
        ],
        ['interval', `${shown.intervalSeconds} s`],
        ['keeps', `${shown.keepPoints} points`],
        ['next cycle', formatTime(shown.nextCycleAt)],
        [
          'last cycle',
          shown.lastCycleError
            ? `failed ${formatTime(shown.lastCycleError.at)}: ${shown.lastCycleError.code}: ${shown.lastCycleError.message}`
            : 'ok',
        ],
        ...shown.leftovers.map((l): [string, string] => [
          `left at ${l.host.name}`,
          `${l.definition ? 'its stale definition and ' : ''}${l.images} image${l.images === 1 ? '' : 's'} (${l.reason}, since ${formatTime(l.since)}; reclaimed once a replica there is ready)`,
        ]),
      ]);
      printTable(
        ['SEQ', 'STATE', 'DATA TAKEN', 'READY', 'READ'],
        shown.points.map((p) => [
          p.seq,
          p.state,
          formatTime(p.takenAt),
          formatTime(p.finishedAt),
          p.readBytes,
        ]),
      );
    },
  });
  replication
    .command('protect <vm>')
    .description('Replicate a VM to a host of another site (its first cycle starts at once)')
    .requiredOption('--to <host>', 'the host the replica is kept on')
    .requiredOption('--rpo <seconds>', 'the most data a failover may lose (at least 60)')
    .option('--interval <seconds>', 'how often a cycle starts (default half the RPO)')
    .option('--keep <points>', 'points in time kept (default 3)')
    .option(
      '--sync',
      'mirror every write to the replica before the guest sees it complete (RPO 0, at a cost in write latency); --interval is then how often a point is taken',
    )
    .action(
      async (
        vm: string,
        options: SettingOptions & { to: string; sync?: boolean },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const made = await ApiClient.fromConfig(globals).post<Replication>(vmPath(vm), {
          targetHost: options.to,
          ...(options.sync ? { mode: 'sync' } : {}),
          ...settings(options),
        });
        if (globals.json) return printJson(made);
        process.stderr.write(
          made.mode === 'sync'
            ? `${made.vm.name}'s writes are mirrored to ${made.targetHost.name} once its first copy is there, a point taken every ${made.intervalSeconds} s (RPO target ${made.rpoSeconds} s while the mirror is down)\n`
            : `${made.vm.name} is replicated to ${made.targetHost.name} every ${made.intervalSeconds} s (RPO ${made.rpoSeconds} s)\n`,
        );
      },
    );
  replication
    .command('set <vm>')
    .description(
      "Change a VM's RPO, interval or points kept, pause and resume it, or switch its mode",
    )
    .option('--rpo <seconds>', 'the RPO target')
    .option('--interval <seconds>', 'how often a cycle starts')
    .option('--keep <points>', 'points in time kept')
    .option('--pause', 'stop its cycles (the replica stays)')
    .option('--resume', 'start its cycles again')
    .option('--mode <mode>', 'interval, or sync (every write mirrored to the replica)')
    .action(
      async (
        vm: string,
        options: SettingOptions & { pause?: boolean; resume?: boolean; mode?: string },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const changed = await ApiClient.fromConfig(globals).request<Replication>(
          'PATCH',
          vmPath(vm),
          {
            ...settings(options),
            ...(options.pause ? { state: 'paused' } : options.resume ? { state: 'active' } : {}),
            ...(options.mode !== undefined ? { mode: options.mode } : {}),
          },
        );
        if (globals.json) return printJson(changed);
        process.stderr.write(
          `${changed.vm.name}'s replication is ${changed.state} (${modeText(changed)})\n`,
        );
      },
    );
  replication
    .command('now <vm>')
    .description('Run a replication cycle of the VM now')
    .option('--no-wait', 'answer with the task at once')
    .action(async (vm: string, options: { wait: boolean }, command: Command) => {
      await runTaskAndSay(
        command.optsWithGlobals<Globals>(),
        `${vmPath(vm)}/cycles`,
        undefined,
        options.wait,
        (result) =>
          `point ${String(result.seq)} (${String(result.scope)}), ${String(result.readBytes)} bytes read`,
      );
    });
  replication
    .command('unprotect <vm>')
    .description("Stop replicating a VM and remove its replica's images")
    .action(async (vm: string, _o: unknown, command: Command) => {
      await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).request('DELETE', vmPath(vm));
      process.stderr.write(`${vm} is no longer replicated\n`);
    });
  replication
    .command('report')
    .description('RPO achieved per VM, point by point (--csv for auditors)')
    .option('--vm <vm>', 'one VM only')
    .option('--csv', 'as CSV')
    .action(async (options: { vm?: string; csv?: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const client = ApiClient.fromConfig(globals);
      const query = new URLSearchParams({
        ...(options.vm ? { vm: options.vm } : {}),
        ...(options.csv ? { format: 'csv' } : {}),
      }).toString();
      const path = `/replications/report${query ? `?${query}` : ''}`;
      if (options.csv) return void process.stdout.write(await client.getText(path));
      const report = await client.get<AnswerOf<typeof replicationReport>>(path);
      if (globals.json) return printJson(report);
      printTable(
        ['VM', 'SEQ', 'DATA TAKEN', 'READY', 'RPO BEFORE', 'RPO AFTER', 'TARGET'],
        report.items.map((row) => [
          row.vmName,
          row.seq,
          formatTime(row.takenAt),
          formatTime(row.finishedAt),
          row.rpoBeforeSeconds === null ? '-' : `${row.rpoBeforeSeconds.toFixed(1)} s`,
          `${row.rpoAfterSeconds.toFixed(1)} s`,
          `${row.rpoTargetSeconds} s`,
        ]),
      );
    });
}
