/**
 * `zenith hosts power|boot|media|identify|fence|bmc|sensors|energy|link|unlink`: a host's physical
 * machine through its BMC (a redfish or ipmi connection). The host may be the machine itself or
 * the hypervisor host linked to it.
 */
import type { Command } from 'commander';
import {
  machineBootDevices,
  machinePowerActions,
  type MachineView,
  type MachineEnergyView,
  type SensorHistoryView,
} from '../../api/machines.js';
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';
import { formatBytes, formatTime, printJson, printKeyValues, printTable } from '../output.js';
import { runTask } from '../progress.js';
import type { Globals } from './object-views.js';
import { instant } from './parse-instant.js';
import { addTaskCommand } from './task-command.js';

/** --from and --to as ms since the epoch; default the last `defaultMs` up to now. */
function period(options: { from?: string; to?: string }, defaultMs: number) {
  const to = options.to ? instant(options.to, '--to') : Date.now();
  const from = options.from ? instant(options.from, '--from') : to - defaultMs;
  return { from, to };
}

const orDash = (value: number | null, digits: number, unit: string) =>
  value === null ? '-' : `${value.toFixed(digits)} ${unit}`;

const oneOf =
  <T extends string>(values: readonly T[], what: string) =>
  (value: string): T => {
    if (!(values as readonly string[]).includes(value))
      throw new ZenithError('ZEN_BAD_REQUEST', `${what} is one of ${values.join(', ')}`, {
        value,
      });
    return value as T;
  };

const hostPath = (host: string, rest: string) => `/hosts/${encodeURIComponent(host)}/${rest}`;

interface Sensor {
  name: string;
  kind: string;
  value: number;
  unit: string;
}

export function registerMachineCommands(hosts: Command): void {
  addTaskCommand(
    hosts,
    'power <host> <action>',
    `Power the host's machine through its BMC (${machinePowerActions.join(', ')}) and wait until the BMC reads it done`,
    (host, action) => ({
      method: 'POST',
      path: hostPath(host, 'power'),
      body: { action: oneOf(machinePowerActions, 'the action')(action) },
    }),
  );
  addTaskCommand(
    hosts,
    'boot <host> <device>',
    `Boot once from a device (${machineBootDevices.join(', ')}), then as configured`,
    (host, device) => ({
      method: 'POST',
      path: hostPath(host, 'boot'),
      body: { device: oneOf(machineBootDevices, 'the device')(device) },
    }),
  );
  hosts
    .command('media <host> <insert|eject> [url]')
    .description(
      "Insert an ISO (by a URL the BMC fetches) into the machine's virtual CD, or eject it",
    )
    .option('--no-wait', 'return as soon as the task is queued')
    .action(
      async (
        host: string,
        what: string,
        url: string | undefined,
        options: { wait: boolean },
        command: Command,
      ) => {
        const op = oneOf(['insert', 'eject'] as const, 'the media action')(what);
        if (op === 'insert' && !url)
          throw new ZenithError('ZEN_BAD_REQUEST', 'insert needs the image URL', {});
        await runTask(
          command.optsWithGlobals<Globals>(),
          op === 'insert' ? 'POST' : 'DELETE',
          hostPath(host, 'media'),
          op === 'insert' ? { image: url } : undefined,
          options.wait,
        );
      },
    );
  addTaskCommand(
    hosts,
    'identify <host> <on|off>',
    "Turn the machine's identify light on or off",
    (host, state) => ({
      method: 'POST',
      path: hostPath(host, 'identify'),
      body: { on: oneOf(['on', 'off'] as const, 'the light')(state) === 'on' },
    }),
  );
  addTaskCommand(
    hosts,
    'fence <host>',
    'Power the machine off and confirm it by reading the power state back',
    (host) => ({ method: 'POST', path: hostPath(host, 'fence') }),
  );
  hosts
    .command('bmc <host>')
    .description("The host's physical machine: hardware, BMC, link, power and sensors now")
    .option('--no-sensors', 'do not read the sensors')
    .action(async (host: string, options: { sensors: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const client = ApiClient.fromConfig(globals);
      const view = await client.get<MachineView>(hostPath(host, 'machine'));
      const sensors = options.sensors
        ? (await client.get<{ sensors: Sensor[] }>(hostPath(host, 'sensors'))).sensors
        : [];
      if (globals.json) return printJson({ ...view, sensors });
      const f = view.machine.facts;
      printKeyValues([
        ['machine', `${view.machine.name} (${view.machine.id})`],
        ['linked host', view.hostId ?? 'none (bare metal)'],
        ['linked by', view.link ? `${view.link.how}, ${formatTime(view.link.at)}` : '-'],
        ['bmc', `${String(f['bmc.protocol'])} ${String(f['bmc.address'])}`],
        ['power', f['hardware.power']],
        ['health', f['hardware.health'] ?? '-'],
        [
          'vendor / model',
          `${String(f['hardware.vendor'] ?? '-')} ${String(f['hardware.model'] ?? '')}`,
        ],
        ['serial', f['hardware.serial'] ?? '-'],
        ['SMBIOS UUID', f['hardware.smbiosUuid'] ?? '-'],
        [
          'BIOS / BMC firmware',
          `${String(f['hardware.biosVersion'] ?? '-')} / ${String(f['hardware.bmcFirmware'] ?? '-')}`,
        ],
        [
          'CPUs',
          f['hardware.cpuSockets']
            ? `${String(f['hardware.cpuSockets'])} × ${String(f['hardware.cpuModel'] ?? '?')}, ${String(f['hardware.cpuCores'] ?? '?')} cores`
            : '-',
        ],
        ['memory', f['hardware.memoryBytes'] ? formatBytes(f['hardware.memoryBytes']) : '-'],
        ['NIC MACs', Array.isArray(f['hardware.nicMacs']) ? f['hardware.nicMacs'].join(', ') : '-'],
        ['can', view.capabilities.join(', ')],
      ]);
      if (sensors.length > 0) {
        process.stdout.write('\n');
        printTable(
          ['SENSOR', 'KIND', 'VALUE'],
          sensors.map((s) => [s.name, s.kind, `${s.value} ${s.unit}`]),
        );
      }
    });
  hosts
    .command('sensors <host>')
    .description(
      "The machine's power draw, temperature and fan speed over time as Zenith sampled them, one line per step",
    )
    .option('--from <time>', 'start (ISO 8601 or ms since the epoch; default an hour ago)')
    .option('--to <time>', 'end (default: now)')
    .option('--step <seconds>', 'seconds per line', '60')
    .action(
      async (
        host: string,
        options: { from?: string; to?: string; step: string },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const { from, to } = period(options, 3_600_000);
        if (!/^\d+$/.test(options.step))
          throw new ZenithError(
            'ZEN_BAD_REQUEST',
            `--step '${options.step}' is not a whole number of seconds`,
          );
        const params = new URLSearchParams({
          from: String(from),
          to: String(to),
          step: options.step,
        });
        const history = await ApiClient.fromConfig(globals).get<SensorHistoryView>(
          hostPath(host, `sensors/history?${params.toString()}`),
        );
        if (globals.json) return printJson(history);
        printTable(
          ['AT', 'POWER', 'HOTTEST', 'FANS'],
          history.points.map((p) => [
            formatTime(p.at),
            orDash(p.watts, 0, 'W'),
            orDash(p.temperatureC, 0, '°C'),
            orDash(p.fanRpm, 0, 'RPM'),
          ]),
        );
      },
    );
  hosts
    .command('energy <host>')
    .description(
      'The energy the machine drew over a period (kWh), integrated from its sampled power draw',
    )
    .option('--from <time>', 'start (ISO 8601 or ms since the epoch; default a day ago)')
    .option('--to <time>', 'end (default: now)')
    .action(async (host: string, options: { from?: string; to?: string }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const { from, to } = period(options, 86_400_000);
      const params = new URLSearchParams({ from: String(from), to: String(to) });
      const energy = await ApiClient.fromConfig(globals).get<MachineEnergyView>(
        hostPath(host, `energy?${params.toString()}`),
      );
      if (globals.json) return printJson(energy);
      const coveredPercent = (100 * energy.coveredMs) / (energy.to - energy.from);
      printKeyValues([
        ['machine', energy.machineId],
        ['from', formatTime(energy.from)],
        ['to', formatTime(energy.to)],
        // Small amounts (a short period, one machine) keep their digits.
        ['energy', `${energy.kWh.toFixed(energy.kWh < 10 ? 6 : 3)} kWh`],
        ['average draw', orDash(energy.averageWatts, 1, 'W')],
        ['covered', `${coveredPercent.toFixed(1)}% of the period (gaps are not guessed)`],
      ]);
    });
  hosts
    .command('link <machine> <host>')
    .description('Link a physical machine (a host its BMC reports) to the hypervisor host on it')
    .action(async (machine: string, host: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const view = await ApiClient.fromConfig(globals).request<MachineView>(
        'PUT',
        hostPath(machine, 'machine-link'),
        { hostId: host },
      );
      if (globals.json) return printJson(view);
      process.stderr.write(`${view.machine.name} linked to ${view.hostId ?? '-'}\n`);
    });
  hosts
    .command('unlink <host>')
    .description('Unlink a machine from its hypervisor host (it stays bare metal)')
    .action(async (host: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const view = await ApiClient.fromConfig(globals).request<MachineView>(
        'DELETE',
        hostPath(host, 'machine-link'),
      );
      if (globals.json) return printJson(view);
      process.stderr.write(`${view.machine.name} unlinked: bare metal\n`);
    });
}
