/** zenith quotas: limits per group and usage against them. */
import type { Command } from 'commander';
import { ZenithError } from '../../api/errors.js';
import type { QuotaView } from '../../api/quotas.js';
import { ApiClient } from '../client.js';
import { formatBytes, formatTime, printJson, printKeyValues, printTable } from '../output.js';
import { parseSize } from './parse-size.js';
import type { Globals } from './globals.js';

type Resource = 'vcpus' | 'memoryBytes' | 'diskBytes' | 'vms';

const resources: Array<{ key: Resource; label: string; bytes: boolean }> = [
  { key: 'vcpus', label: 'vCPUs', bytes: false },
  { key: 'memoryBytes', label: 'memory', bytes: true },
  { key: 'diskBytes', label: 'disk', bytes: true },
  { key: 'vms', label: 'VMs', bytes: false },
];

const client = (command: Command) => {
  const globals = command.optsWithGlobals<Globals>();
  return { api: ApiClient.fromConfig(globals), json: globals.json === true };
};
const path = (value: string) => encodeURIComponent(value);

function amount(value: number | null, bytes: boolean): string {
  if (value === null) return 'no limit';
  return bytes ? formatBytes(value) : String(value);
}

/** A limit on the command line: a count or a size, or `none` for no limit. */
function limit(text: string, bytes: boolean): number | null {
  if (text === 'none') return null;
  if (bytes) return parseSize(text);
  if (!/^\d+$/.test(text))
    throw new ZenithError('ZEN_BAD_REQUEST', `'${text}' is not a whole number (or none)`);
  return Number(text);
}

function printQuota(quota: QuotaView): void {
  printKeyValues([
    ['group', quota.groupName],
    ['covers', quota.covers.join(', ')],
    ['updated', `${formatTime(quota.updatedAt)} by ${quota.updatedBy}`],
  ]);
  console.log('');
  printTable(
    ['RESOURCE', 'LIMIT', 'USED', 'RESERVED', 'AVAILABLE'],
    resources.map(({ key, label, bytes }) => [
      label,
      amount(quota.limits[key], bytes),
      amount(quota.used[key], bytes),
      amount(quota.reserved[key], bytes),
      amount(quota.available[key], bytes),
    ]),
  );
}

export function registerQuotas(program: Command): void {
  const quotas = program
    .command('quotas')
    .description('Quotas per group: vCPUs, memory, disk, number of VMs');
  quotas
    .command('list', { isDefault: true })
    .description('Every group quota with its usage')
    .action(async (_o, command: Command) => {
      const { api, json } = client(command);
      const page = await api.get<{ items: QuotaView[] }>('/quotas');
      if (json) return printJson(page);
      printTable(
        ['GROUP', 'VCPUS', 'MEMORY', 'DISK', 'VMS'],
        page.items.map((q) => [
          q.groupName,
          ...resources.map(
            ({ key, bytes }) =>
              `${amount(q.used[key] + q.reserved[key], bytes)} / ${amount(q.limits[key], bytes)}`,
          ),
        ]),
      );
    });
  quotas
    .command('show <group>')
    .description(
      "A group's limits, used, reserved and available (members of the group may read it)",
    )
    .action(async (group: string, _o, command: Command) => {
      const { api, json } = client(command);
      const quota = await api.get<QuotaView>(`/groups/${path(group)}/quota`);
      if (json) return printJson(quota);
      printQuota(quota);
    });
  quotas
    .command('set <group>')
    .description('Set the limits given (none: no limit); the others stay as they are')
    .option('--vcpus <n>', 'vCPUs')
    .option('--memory <size>', 'memory, e.g. 64GiB')
    .option('--disk <size>', 'disk, e.g. 2TiB')
    .option('--vms <n>', 'number of VMs')
    .action(
      async (
        group: string,
        options: { vcpus?: string; memory?: string; disk?: string; vms?: string },
        command: Command,
      ) => {
        const { api, json } = client(command);
        const body: Partial<Record<Resource, number | null>> = {};
        if (options.vcpus !== undefined) body.vcpus = limit(options.vcpus, false);
        if (options.memory !== undefined) body.memoryBytes = limit(options.memory, true);
        if (options.disk !== undefined) body.diskBytes = limit(options.disk, true);
        if (options.vms !== undefined) body.vms = limit(options.vms, false);
        const quota = await api.request<QuotaView>('PUT', `/groups/${path(group)}/quota`, body);
        if (json) return printJson(quota);
        printQuota(quota);
      },
    );
  quotas
    .command('clear <group>')
    .description("Remove a group's quota")
    .action(async (group: string, _o, command: Command) => {
      const { api, json } = client(command);
      const quota = await api.request<QuotaView>('DELETE', `/groups/${path(group)}/quota`);
      if (json) return printJson(quota);
      console.log(`cleared the quota of ${quota.groupName}`);
    });
}
