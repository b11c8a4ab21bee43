/**
 * `zenith backups`: the catalogue of backups, backing a VM up, restoring and deleting a backup;
 * repositories have a file of their own (backups-repositories.ts).
 */
import { rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import type {
  DiskRestoreResult,
  getBackup,
  listBackupRepositories,
  listBackups,
  restoreBackupDisk,
} from '../../api/backups.js';
import type { AnswerOf, BodyOf } from '../../api/operation.js';
import { ApiClient } from '../client.js';
import { formatBytes, formatTime, printJson, printKeyValues, printTable } from '../output.js';
import { runTaskAndSay, scopeOf } from './backup-views.js';
import { registerJobs } from './backups-jobs.js';
import { registerRepositories } from './backups-repositories.js';
import { printList, type Globals } from './globals.js';

export function registerBackups(program: Command): void {
  const backups = program
    .command('backups')
    .description('Backups of VMs: the catalogue, backing up, restoring; repositories and jobs');
  backups
    .command('list', { isDefault: true })
    .description('The catalogue, newest first')
    .option('--vm <vm>', "only this VM's backups (name or id)")
    .option('--repository <repository>', 'only the backups in this repository (name or id)')
    .option('--state <state>', 'ok or damaged')
    .action(
      async (options: { vm?: string; repository?: string; state?: string }, command: Command) => {
        const query = new URLSearchParams({
          ...(options.vm ? { vm: options.vm } : {}),
          ...(options.repository ? { repository: options.repository } : {}),
          ...(options.state ? { state: options.state } : {}),
        }).toString();
        await printList<AnswerOf<typeof listBackups>>(
          command,
          `/backups${query ? `?${query}` : ''}`,
          ['ID', 'VM', 'TAKEN', 'SCOPE', 'SIZE', 'READ', 'STORED', 'NEW/SHARED', 'STATE'],
          (b) => [
            b.id,
            b.vmName,
            formatTime(b.takenAt),
            scopeOf(b),
            formatBytes(b.sizeBytes),
            formatBytes(b.readBytes),
            formatBytes(b.storedBytes),
            `${b.newChunks}/${b.sharedChunks}`,
            b.state,
          ],
        );
      },
    );
  backups
    .command('show <backup>')
    .description('One backup with its disks')
    .action(async (id: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const client = ApiClient.fromConfig(globals);
      const backup = await client.get<AnswerOf<typeof getBackup>>(
        `/backups/${encodeURIComponent(id)}`,
      );
      if (globals.json) return printJson(backup);
      // The repository by name where the caller may read the repositories (backup.read on all).
      const repositories = await client
        .get<AnswerOf<typeof listBackupRepositories>>('/backup-repositories')
        .catch(() => ({ items: [] }));
      const repository = repositories.items.find((r) => r.id === backup.repositoryId);
      printKeyValues([
        ['id', backup.id],
        ['vm', `${backup.vmName} (${backup.vmId})`],
        ['repository', repository ? `${repository.name} (${repository.id})` : backup.repositoryId],
        ['taken', formatTime(backup.takenAt)],
        ['finished', formatTime(backup.finishedAt)],
        ['scope', scopeOf(backup)],
        [
          'quiesced',
          backup.quiesced
            ? `yes: file systems frozen by the guest agent (${Math.max(0, ...backup.disks.map((d) => d.frozenFileSystems))})`
            : `no: ${backup.disks.find((d) => d.quiesceNote)?.quiesceNote ?? 'crash-consistent, or the VM was stopped'}`,
        ],
        ['parent', backup.parentId],
        ['state', backup.damage ? `${backup.state}: ${backup.damage}` : backup.state],
        ['size', formatBytes(backup.sizeBytes)],
        ['read', formatBytes(backup.readBytes)],
        ['stored', formatBytes(backup.storedBytes)],
        [
          'chunks',
          `${backup.newChunks} new, ${backup.sharedChunks} shared, ${backup.zeroChunks} zero`,
        ],
        ['task', backup.taskId],
      ]);
      process.stdout.write('\ndisks:\n');
      printTable(
        ['DISK', 'CAPACITY', 'SCOPE', 'READ', 'STORED', 'CHECKPOINT'],
        backup.disks.map((d) => [
          d.diskId,
          formatBytes(d.capacityBytes),
          d.scope,
          formatBytes(d.readBytes),
          formatBytes(d.storedBytes),
          d.checkpoint,
        ]),
      );
    });
  backups
    .command('create <vm>')
    .description(
      'Back a VM up now (incremental where its last backup in the repository allows) and wait for the task',
    )
    .requiredOption('--repository <repository>', 'the repository (name or id)')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(async (vm: string, options: { repository: string; wait: boolean }, command: Command) =>
      runTaskAndSay(
        command.optsWithGlobals<Globals>(),
        `/vms/${encodeURIComponent(vm)}/backups`,
        { repository: options.repository },
        options.wait,
        (r) =>
          `backup ${String(r.backupId)}: ${String(r.scope)}, read ${formatBytes(r.readBytes)}, stored ${formatBytes(r.storedBytes)}; chunks ${String(r.newChunks)} new, ${String(r.sharedChunks)} shared`,
      ),
    );
  backups
    .command('restore <backup>')
    .description(
      'Restore a backup as a new, stopped VM on a host, or over its own (stopped) VM, and wait for the task',
    )
    .option('--host <host>', 'the host to restore a new VM on (name or id)')
    .option('--name <name>', "the new VM's name (default: the VM's name and -restored)")
    .option(
      '--replace <vm>',
      "over the original: the backup's own VM, named to confirm that its disks are replaced",
    )
    .option('--no-wait', 'return as soon as the task is queued')
    .action(
      async (
        backup: string,
        options: { host?: string; name?: string; replace?: string; wait: boolean },
        command: Command,
      ) => {
        if ((options.host === undefined) === (options.replace === undefined))
          throw new Error('say where: --host H for a new VM, or --replace VM to restore over it');
        return runTaskAndSay(
          command.optsWithGlobals<Globals>(),
          `/backups/${encodeURIComponent(backup)}/restore`,
          options.replace !== undefined
            ? { replace: options.replace }
            : { host: options.host, ...(options.name ? { name: options.name } : {}) },
          options.wait,
          (r) =>
            options.replace !== undefined
              ? `restored over ${String(r.name)} (${String(r.vmId)}), stopped; its old disks are removed`
              : `restored as ${String(r.name)} (${String(r.vmId)}), stopped`,
        );
      },
    );
  backups
    .command('restore-disk <backup> <disk>')
    .description(
      "Restore one disk of a backup (disk0, disk1, …) into a stopped VM — added as a new disk, or over one of its disks with --replace — and wait for the task; the restored disk has the backup's capacity",
    )
    .option('--vm <vm>', "the VM the disk goes into (name or id; default: the backup's own VM)")
    .option(
      '--replace <disk>',
      "one of the VM's disks (disk0, …), named to confirm that its contents are replaced",
    )
    .option('--no-wait', 'return as soon as the task is queued')
    .action(
      async (
        backup: string,
        disk: string,
        options: { vm?: string; replace?: string; wait: boolean },
        command: Command,
      ) => {
        const body: BodyOf<typeof restoreBackupDisk> = {
          ...(options.vm !== undefined ? { vm: options.vm } : {}),
          ...(options.replace !== undefined ? { replace: options.replace } : {}),
        };
        return runTaskAndSay(
          command.optsWithGlobals<Globals>(),
          `/backups/${encodeURIComponent(backup)}/disks/${encodeURIComponent(disk)}/restore`,
          body,
          options.wait,
          (result) => {
            const r = result as DiskRestoreResult;
            return r.replaced
              ? `${r.diskId} restored over ${r.vmDiskId} of ${r.name} (${r.vmId}), ${formatBytes(r.capacityBytes)}; its old image is removed`
              : `${r.diskId} restored into ${r.name} (${r.vmId}) as ${r.vmDiskId}, ${formatBytes(r.capacityBytes)}`;
          },
        );
      },
    );
  backups
    .command('test <backup>')
    .description(
      'A restore test: restore the backup on a host with no network, start it, wait for the guest to say it is up on its serial console, then remove it',
    )
    .requiredOption('--host <host>', 'the host to run the test VM on (name or id)')
    .option('--marker <regex>', 'what the guest writes once up (default: a login prompt)')
    .option('--timeout <seconds>', 'how long to wait for it (default 300)')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(
      async (
        backup: string,
        options: { host: string; marker?: string; timeout?: string; wait: boolean },
        command: Command,
      ) => {
        if (options.timeout !== undefined && !/^\d+$/.test(options.timeout))
          throw new Error('--timeout must be a whole number of seconds');
        return runTaskAndSay(
          command.optsWithGlobals<Globals>(),
          `/backups/${encodeURIComponent(backup)}/test`,
          {
            host: options.host,
            ...(options.marker ? { marker: options.marker } : {}),
            ...(options.timeout ? { timeoutSeconds: Number(options.timeout) } : {}),
          },
          options.wait,
          (r) => `the guest came up in ${String(r.bootSeconds)} s: ${String(r.line)}`,
        );
      },
    );
  backups
    .command('download <backup>')
    .description(
      "Download one disk of a backup as a raw image (sparse where the guest's disk reads as zeroes) or a qcow2 image",
    )
    .option('--disk <disk>', 'which disk (disk0, disk1, …)', 'disk0')
    .option('--format <format>', 'raw or qcow2', 'raw')
    .option('--output <file>', 'where to write it (default: the name the server gives)')
    .action(
      async (
        backup: string,
        options: { disk: string; format: string; output?: string },
        command: Command,
      ) => {
        if (options.format !== 'raw' && options.format !== 'qcow2')
          throw new Error(`--format ${options.format}: give raw or qcow2`);
        const answer = await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).download(
          `/backups/${encodeURIComponent(backup)}/disks/${encodeURIComponent(options.disk)}/download?format=${options.format}`,
        );
        const file =
          options.output ?? answer.fileName ?? `${backup}-${options.disk}.${options.format}`;
        let written: number;
        try {
          written = await writeSparse(file, answer.body);
        } catch (error) {
          throw new Error(
            `the download was cut off (${(error as Error).message}; a damaged chunk ends it: see the backup's state); nothing was kept`,
            { cause: error },
          );
        }
        if (answer.sizeBytes !== null && written !== answer.sizeBytes) {
          rmSync(file, { force: true });
          throw new Error(
            `the download ended after ${formatBytes(written)} of ${formatBytes(answer.sizeBytes)} (a damaged chunk ends it: see the backup's state); nothing was kept`,
          );
        }
        process.stderr.write(`wrote ${file} (${formatBytes(written)}, ${options.format})\n`);
      },
    );
  backups
    .command('delete <backup>')
    .description('Delete a backup (its chunks go at the next garbage collection unless shared)')
    .action(async (backup: string, _o: unknown, command: Command) => {
      await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).request(
        'DELETE',
        `/backups/${encodeURIComponent(backup)}`,
      );
      process.stderr.write(`deleted backup ${backup}\n`);
    });
  registerRepositories(backups);
  registerJobs(backups);
}

/** Writes the bytes to a new file, leaving holes where a whole 64 KiB block is zeroes; answers the length. */
async function writeSparse(file: string, body: ReadableStream<Uint8Array>): Promise<number> {
  const block = 64 * 1024;
  const handle = await open(file, 'wx');
  let position = 0;
  let pending = Buffer.alloc(0);
  const flush = async (bytes: Buffer) => {
    for (let at = 0; at < bytes.length; at += block) {
      const part = bytes.subarray(at, at + block);
      if (part.some((b) => b !== 0)) await handle.write(part, 0, part.length, position + at);
    }
    position += bytes.length;
  };
  try {
    for await (const piece of body) {
      pending = pending.length === 0 ? Buffer.from(piece) : Buffer.concat([pending, piece]);
      const whole = pending.length - (pending.length % block);
      if (whole > 0) {
        await flush(pending.subarray(0, whole));
        pending = pending.subarray(whole);
      }
    }
    await flush(pending);
    await handle.truncate(position);
  } catch (error) {
    await handle.close();
    rmSync(file, { force: true });
    throw error;
  }
  await handle.close();
  return position;
}
