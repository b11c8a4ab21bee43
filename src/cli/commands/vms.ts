/**
 * `zenith vms`: list and show VMs, their actions as tasks (start … resume, create, delete,
 * migrate), where they are and were, and their user facts and tags; clone, rename, reconfigure,
 * console, snapshot and metrics have files of their own (vms-*.ts).
 */
import type { Command } from 'commander';
import { ZenithError } from '../../api/errors.js';
import type { LocationView } from '../../api/inventory.js';
import { vmPowerActions, type VmPowerAction } from '../../api/vms.js';
import { ApiClient } from '../client.js';
import { formatTime, formatBytes, printJson, printKeyValues } from '../output.js';
import { runTask } from '../progress.js';
import {
  addListCommand,
  collect,
  showObject,
  sim,
  type Globals,
  type ObjectView,
} from './object-views.js';
import { parseSize } from './parse-size.js';
import { wholeNumber } from './parse-number.js';
import { registerClone } from './vms-clone.js';
import { registerConsole } from './vms-console.js';
import { registerMetrics } from './vms-metrics.js';
import { registerReconfigure } from './vms-reconfigure.js';
import { registerRename } from './vms-rename.js';
import { registerSnapshots } from './vms-snapshot.js';
import { printList } from './globals.js';
import { addTaskCommand } from './task-command.js';

const vmPath = (vm: string) => `/vms/${encodeURIComponent(vm)}`;

export function registerVms(program: Command): void {
  const vms = program.command('vms').description('Virtual machines');
  addListCommand(vms, {
    description: 'List VMs',
    path: '/vms',
    headers: ['NAME', 'POWER', 'STATUS', 'HOST', 'CPUS', 'MEMORY', 'TAGS', 'ID'],
    row: (v) => [
      v.name + sim(v),
      v.facts['power.state'] as string,
      v.status,
      v.computed['location.hostName'] as string,
      v.facts['cpu.count'] as number,
      formatBytes(v.facts['memory.bytes']),
      v.tags.join(' '),
      v.id,
    ],
  });
  vms
    .command('show <vm>')
    .description('One VM by name or id, with its facts')
    .action(async (vm: string, _o: unknown, command: Command) =>
      showObject(command.optsWithGlobals<Globals>(), vmPath(vm)),
    );

  for (const action of Object.keys(vmPowerActions) as VmPowerAction[]) {
    addTaskCommand(
      vms,
      `${action} <vm>`,
      `${action[0]!.toUpperCase()}${action.slice(1)} a VM and wait for the task`,
      (vm) => ({ method: 'POST', path: `${vmPath(vm)}/${action}` }),
    );
  }
  vms
    .command('create <name>')
    .description(
      'Create a VM (on --host, or where placement chooses by policy) and wait for the task',
    )
    .option('--host <host>', 'the host (name or id); placement chooses when absent')
    .option('--type <type>', 'the hypervisor type it needs (placement only)')
    .option(
      '--group <group>',
      'the group the VM belongs to and whose quotas it counts against (default: your only group)',
    )
    .option('--tag <tag>', 'a tag for the new VM, repeatable', collect)
    .option('--fact <user.key=value>', 'a user fact for the new VM, repeatable', collect)
    .option('--cpus <n>', 'virtual CPUs', '1')
    .option('--memory <size>', 'memory, e.g. 512MiB or 2GiB', '1GiB')
    .option('--disk <size>', 'disk size, e.g. 20GiB (0 for none)', '10GiB')
    .option(
      '--kernel <path>',
      "QEMU, libvirt: boot this kernel (QEMU: in the host's storage roots; libvirt: a path on the libvirt host)",
    )
    .option('--initrd <path>', 'QEMU, libvirt: with this initramfs')
    .option('--cmdline <text>', 'QEMU, libvirt: kernel command line')
    .option('--network <name>', 'libvirt: plug a NIC into this libvirt network')
    .option('--base-image <path>', 'QEMU: create the disk as a linked clone of this qcow2 image')
    .option('--template <vm>', 'vSphere: clone this template or VM (name or id)')
    .option(
      '--datastore <datastore>',
      "vSphere: put the VM on this datastore (default: the host's first)",
    )
    .option('--no-wait', 'return as soon as the task is queued')
    .action(
      async (
        name: string,
        options: {
          host?: string;
          type?: string;
          group?: string;
          tag?: string[];
          fact?: string[];
          cpus: string;
          memory: string;
          disk: string;
          wait: boolean;
          kernel?: string;
          initrd?: string;
          cmdline?: string;
          baseImage?: string;
          network?: string;
          template?: string;
          datastore?: string;
        },
        command: Command,
      ) => {
        const driverOptions: Record<string, string> = {};
        if (options.kernel) driverOptions.kernel = options.kernel;
        if (options.initrd) driverOptions.initrd = options.initrd;
        if (options.cmdline) driverOptions.cmdline = options.cmdline;
        if (options.baseImage) driverOptions.baseImage = options.baseImage;
        if (options.network) driverOptions.network = options.network;
        if (options.template) driverOptions.template = options.template;
        if (options.datastore) driverOptions.datastore = options.datastore;
        const facts: Record<string, unknown> = {};
        for (const pair of options.fact ?? []) {
          const eq = pair.indexOf('=');
          if (eq <= 0)
            throw new ZenithError('ZEN_BAD_REQUEST', `--fact takes user.KEY=VALUE, not '${pair}'`);
          const value = pair.slice(eq + 1);
          facts[pair.slice(0, eq)] =
            value !== '' && Number.isFinite(Number(value)) ? Number(value) : value;
        }
        const body = {
          name,
          ...(options.host ? { hostId: options.host } : {}),
          ...(options.type ? { type: options.type } : {}),
          ...(options.group ? { group: options.group } : {}),
          ...(options.tag ? { tags: options.tag } : {}),
          ...(Object.keys(facts).length > 0 ? { facts } : {}),
          cpus: wholeNumber(options.cpus, '--cpus'),
          memoryBytes: parseSize(options.memory),
          diskBytes: parseSize(options.disk),
          ...(Object.keys(driverOptions).length > 0 ? { options: driverOptions } : {}),
        };
        await runTask(command.optsWithGlobals<Globals>(), 'POST', '/vms', body, options.wait);
      },
    );
  registerClone(vms);
  registerRename(vms);
  registerReconfigure(vms);
  registerConsole(vms);
  registerSnapshots(vms);
  addTaskCommand(vms, 'delete <vm>', 'Delete a stopped VM', (vm) => ({
    method: 'DELETE',
    path: vmPath(vm),
  }));
  vms
    .command('migrate <vm> [host]')
    .description(
      'Live-migrate a VM to another host and/or datastore (name or id) and wait for the task',
    )
    .option('--datastore <datastore>', "move the VM's disks to this datastore (vSphere)")
    .option('--with-storage', 'copy the disks too (no shared storage)')
    .option('--max-bandwidth <bytesPerSecond>', 'cap the migration bandwidth')
    .option('--max-downtime <ms>', 'the longest pause the switch-over may cause')
    .option('--multifd <channels>', 'send memory over this many connections')
    .option('--auto-converge', 'slow a guest that dirties memory faster than it is sent')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(
      async (
        vm: string,
        host: string | undefined,
        options: {
          datastore?: string;
          withStorage?: boolean;
          maxBandwidth?: string;
          maxDowntime?: string;
          multifd?: string;
          autoConverge?: boolean;
          wait: boolean;
        },
        command: Command,
      ) => {
        const body: Record<string, unknown> = {};
        if (host) body.targetHostId = host;
        if (options.datastore) body.targetDatastoreId = options.datastore;
        if (options.withStorage) body.withStorage = true;
        if (options.maxBandwidth)
          body.maxBandwidthBytesPerSecond = wholeNumber(options.maxBandwidth, '--max-bandwidth');
        if (options.maxDowntime)
          body.maxDowntimeMs = wholeNumber(options.maxDowntime, '--max-downtime');
        if (options.multifd) body.multifdChannels = wholeNumber(options.multifd, '--multifd');
        if (options.autoConverge) body.autoConverge = true;
        await runTask(
          command.optsWithGlobals<Globals>(),
          'POST',
          `${vmPath(vm)}/migrate`,
          body,
          options.wait,
        );
      },
    );
  vms
    .command('location <vm>')
    .description('Where the VM runs now, or was at --at TIME')
    .option('--at <time>', 'ISO 8601 time or ms since the epoch')
    .action(async (vm: string, options: { at?: string }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const at = options.at ? `?at=${encodeURIComponent(options.at)}` : '';
      const location = await ApiClient.fromConfig(globals).get<LocationView>(
        `${vmPath(vm)}/location${at}`,
      );
      if (globals.json) return printJson(location);
      printKeyValues([
        ['host', `${location.hostName ?? '-'} (${location.hostId ?? '-'})`],
        ['power', location.powerState],
        ['since', formatTime(location.from)],
        ['until', location.to ? formatTime(location.to) : 'now'],
      ]);
    });
  registerMetrics(vms);
  vms
    .command('history <vm>')
    .description('The location history: every interval on a host in one power state')
    .action(async (vm: string, _o: unknown, command: Command) => {
      await printList<{ items: LocationView[] }>(
        command,
        `${vmPath(vm)}/location-history`,
        ['FROM', 'TO', 'HOST', 'POWER'],
        (i) => [formatTime(i.from), i.to ? formatTime(i.to) : 'now', i.hostName, i.powerState],
      );
    });
  vms
    .command('set <vm>')
    .description('Write user facts (--fact user.owner=alice) and tags (--tag / --untag)')
    .option('--fact <key=value>', 'a user fact; an empty value deletes it', collect)
    .option('--tag <tag>', 'add a tag', collect)
    .option('--untag <tag>', 'remove a tag', collect)
    .action(
      async (
        vm: string,
        options: { fact?: string[]; tag?: string[]; untag?: string[] },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const client = ApiClient.fromConfig(globals);
        const target = await client.get<ObjectView>(vmPath(vm));
        const facts: Record<string, unknown> = {};
        for (const pair of options.fact ?? []) {
          const eq = pair.indexOf('=');
          const key = eq < 0 ? pair : pair.slice(0, eq);
          const value = eq < 0 ? '' : pair.slice(eq + 1);
          facts[key] =
            value === ''
              ? null
              : Number.isFinite(Number(value)) && value.trim() !== ''
                ? Number(value)
                : value;
        }
        const updated = await client.request<ObjectView>('PATCH', `/objects/${target.id}`, {
          facts,
          ...(options.tag ? { addTags: options.tag } : {}),
          ...(options.untag ? { removeTags: options.untag } : {}),
        });
        if (globals.json) printJson(updated);
        else process.stderr.write(`updated ${updated.name}\n`);
      },
    );
}
