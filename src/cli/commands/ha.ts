/**
 * `zenith ha`: high availability — hosts as the failure detector sees them, VMs' protection,
 * failovers, and the what-if of a host failure.
 */
import type { Command } from 'commander';
import type { getFailover, haStatus, listFailovers, listHaVms } from '../../api/ha.js';
import type { haWhatIf } from '../../api/ha-admission.js';
import type { AnswerOf } from '../../api/operation.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printKeyValues, printTable } from '../output.js';
import { printList, type Globals } from './globals.js';

/** vSphere HA's admission control in a few words: off, or its policy and figures. */
function admissionOf(
  control: AnswerOf<typeof haStatus>['vsphereClusters'][number]['admissionControl'],
): string {
  if (!control.enabled) return 'off';
  switch (control.policy) {
    case 'hostFailures':
      return `tolerate ${control.hostFailuresToTolerate ?? '?'} host failure(s)`;
    case 'resourcePercentage':
      return `reserve ${control.cpuFailoverPercent ?? '?'}% CPU, ${control.memoryFailoverPercent ?? '?'}% memory`;
    case 'failoverHosts':
      return `failover hosts ${control.failoverHosts.join(', ')}`;
    default:
      return control.policy ?? 'on';
  }
}

const ms = (value: number | null) => (value === null ? null : `${(value / 1000).toFixed(1)} s`);

export function registerHa(program: Command): void {
  const ha = program
    .command('ha')
    .description('High availability: failure detection, protection, failovers');
  ha.command('status', { isDefault: true })
    .description('Each host HA watches, its state and fencing; how many VMs are protected')
    .action(async (_o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const status = await ApiClient.fromConfig(globals).get<AnswerOf<typeof haStatus>>('/ha');
      if (globals.json) return printJson(status);
      printTable(
        ['HOST', 'STATE', 'SINCE', 'SILENT', 'FENCING', 'HEARTBEAT', 'WHY'],
        status.hosts.map((h) => [
          h.name,
          h.state,
          h.since === null ? null : formatTime(h.since),
          ms(h.silentMs),
          h.fencing,
          h.storage ? `#${h.storage.counter}` : null,
          h.reason ?? null,
        ]),
      );
      const { vms } = status;
      const vsphereVms = vms.vsphereHa > 0 ? `, ${vms.vsphereHa} protected by vSphere HA` : '';
      const atLimit =
        vms.monitoringLimit > 0
          ? `, ${vms.monitoringLimit} left stopped at VM monitoring's restart limit`
          : '';
      process.stdout.write(
        `\nVMs: ${vms.protected} protected, ${vms.unprotected} unprotected, ${vms.restarting} restarting, ${vms.waiting} waiting${vsphereVms}${atLimit}\n`,
      );
      if (status.vsphereClusters.length === 0) return;
      process.stdout.write('\nvSphere clusters (vSphere HA, as vCenter reports it):\n');
      printTable(
        [
          'CLUSTER',
          'VSPHERE HA',
          'HOST MONITORING',
          'ADMISSION CONTROL',
          'VM MONITORING',
          'RESTART',
          'ISOLATION',
          'HOSTS',
        ],
        status.vsphereClusters.map((c) => [
          c.name,
          c.enabled ? 'on' : 'off',
          c.hostMonitoring,
          admissionOf(c.admissionControl),
          c.vmMonitoring,
          c.restartPriority,
          c.isolationResponse,
          c.hosts.map((h) => `${h.name}: ${h.state ?? '-'}`).join(', '),
        ]),
      );
    });
  ha.command('vms')
    .description("Each VM's protection, and why it is unprotected, waiting or left off")
    .option('--state <state>', 'protected, unprotected, restarting, waiting or monitoring-limit')
    .action(async (options: { state?: string }, command: Command) => {
      const query = options.state ? `?state=${encodeURIComponent(options.state)}` : '';
      await printList<AnswerOf<typeof listHaVms>>(
        command,
        `/ha/vms${query}`,
        ['VM', 'STATE', 'PRIORITY', 'ORDER', 'DESCRIBED', 'WHY'],
        (vm) => [
          vm.name,
          vm.state,
          vm.priority,
          vm.restartOrder,
          vm.describedAt === null ? null : formatTime(vm.describedAt),
          vm.reason,
        ],
      );
    });
  ha.command('failovers')
    .description('Failovers, newest first')
    .option('--limit <n>', 'how many', '20')
    .action(async (options: { limit: string }, command: Command) => {
      await printList<AnswerOf<typeof listFailovers>>(
        command,
        `/ha/failovers?limit=${encodeURIComponent(options.limit)}`,
        ['ID', 'HOST', 'STATE', 'FAILED', 'FENCED BY', 'VMS', 'ERROR'],
        (f) => [
          f.id,
          f.hostName,
          f.state,
          formatTime(f.failedAt),
          f.fenceMethod,
          `${f.restarts.filter((r) => r.state === 'running').length}/${f.restarts.length} running`,
          f.error,
        ],
      );
    });
  ha.command('what-if <hosts...>')
    .description(
      'If these hosts failed now: where each protected VM on them would run again, or why it could not',
    )
    .action(async (hosts: string[], _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const report = await ApiClient.fromConfig(globals).post<AnswerOf<typeof haWhatIf>>(
        '/ha/what-if',
        { hosts },
      );
      if (globals.json) return printJson(report);
      printTable(
        ['VM', 'FROM', 'PRIORITY', 'ORDER', 'RESTARTS ON', 'WHY NOT'],
        report.restarts.map((r) => [
          r.vmName ?? '(not visible to you)',
          r.fromHostName,
          r.priority,
          r.restartOrder,
          r.restarts ? (r.toHostName ?? '(a host not visible to you)') : '—',
          r.reason,
        ]),
      );
      const failed = report.failedHosts.map((h) => h.name).join(', ');
      process.stdout.write(
        `\nIf ${failed} failed: ${report.restarted} VMs restart, ${report.unrecoverable} cannot\n`,
      );
    });
  ha.command('failover <id>')
    .description('One failover: fencing, then each VM’s restart in order')
    .action(async (id: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const f = await ApiClient.fromConfig(globals).get<AnswerOf<typeof getFailover>>(
        `/ha/failovers/${encodeURIComponent(id)}`,
      );
      if (globals.json) return printJson(f);
      printKeyValues([
        ['failover', `${f.id} (${f.state})`],
        ['host', f.hostName],
        ['failed', formatTime(f.failedAt)],
        ['detected', `${formatTime(f.detectedAt)} (+${ms(f.detectedAt - f.failedAt)})`],
        ['fenced', f.fencedAt === null ? '—' : `${f.fenceMethod}, +${ms(f.fencedAt - f.failedAt)}`],
        ...(f.error ? ([['error', f.error]] as Array<[string, unknown]>) : []),
      ]);
      printTable(
        ['VM', 'PRIORITY', 'ORDER', 'STATE', 'TO', 'RUNNING AFTER', 'WHY'],
        f.restarts.map((r) => [
          r.vmName,
          r.priority,
          r.restartOrder,
          r.state,
          r.toHostName,
          r.runningAt === null ? null : ms(r.runningAt - f.failedAt),
          r.reason,
        ]),
      );
    });
}
