/** connections, tasks, events */
import type { Command } from 'commander';
import { ZenithError } from '../../api/errors.js';
import type { listEvents, ZenithEvent } from '../../api/events.js';
import type { AnswerOf } from '../../api/operation.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printTable } from '../output.js';
import { waitForTask, type TaskSummary } from '../progress.js';

interface Globals {
  json?: boolean;
  server?: string;
}

function parseSettings(pairs: string[] = []): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ZenithError('ZEN_BAD_REQUEST', `--set takes KEY=VALUE, not '${pair}'`);
    const value = pair.slice(eq + 1);
    settings[pair.slice(0, eq)] =
      value !== '' && Number.isFinite(Number(value))
        ? Number(value)
        : value === 'true'
          ? true
          : value === 'false'
            ? false
            : value;
  }
  return settings;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text.trim();
}

export function registerOperations(program: Command): void {
  const connections = program
    .command('connections')
    .description('Connections to hypervisors and managers');
  connections
    .command('list', { isDefault: true })
    .description('List connections')
    .action(async (_o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const list = await ApiClient.fromConfig(globals).get<{
        items: Array<{
          id: string;
          name: string;
          type: string;
          simulated: boolean;
          state: string;
          lastSyncAt: number | null;
          lastError: string | null;
        }>;
      }>('/connections');
      if (globals.json) return printJson(list);
      printTable(
        ['NAME', 'TYPE', 'STATE', 'LAST SYNC', 'ERROR', 'ID'],
        list.items.map((c) => [
          c.name,
          c.simulated ? `${c.type} (simulated)` : c.type,
          c.state,
          formatTime(c.lastSyncAt),
          c.lastError,
          c.id,
        ]),
      );
    });
  connections
    .command('add <name> <type>')
    .description(
      'Add a connection, e.g.: zenith connections add lab simulated --set hostsPerCluster=5',
    )
    .option('--set <key=value>', 'a driver setting, repeatable', collect)
    .option(
      '--secret-stdin',
      'read the connection secret (password, TLS client key) from standard input',
    )
    .action(
      async (
        name: string,
        type: string,
        options: { set?: string[]; secretStdin?: boolean },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const secret = options.secretStdin ? await readStdin() : undefined;
        const created = await ApiClient.fromConfig(globals).post<{
          id: string;
          name: string;
          state: string;
          lastError: string | null;
        }>('/connections', {
          name,
          type,
          settings: parseSettings(options.set),
          ...(secret ? { secret } : {}),
        });
        if (globals.json) return printJson(created);
        process.stderr.write(
          `connection ${created.name} (${created.id}) is ${created.state}${created.lastError ? `: ${created.lastError}` : ''}\n`,
        );
      },
    );
  connections
    .command('test <type>')
    .description('Try settings without saving')
    .option('--set <key=value>', 'a driver setting, repeatable', collect)
    .option('--secret-stdin', 'read the connection secret (password, key) from standard input')
    .action(
      async (type: string, options: { set?: string[]; secretStdin?: boolean }, command: Command) =>
        printJson(
          await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).post('/connections/test', {
            type,
            settings: parseSettings(options.set),
            ...(options.secretStdin ? { secret: await readStdin() } : {}),
          }),
        ),
    );
  connections
    .command('remove <connection>')
    .description('Remove a connection (its objects stay, marked missing)')
    .action(async (connection: string, _o: unknown, command: Command) => {
      const removed = await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).request<{
        name: string;
      }>('DELETE', `/connections/${encodeURIComponent(connection)}`);
      process.stderr.write(`removed connection ${removed.name}\n`);
    });
  connections
    .command('refresh <connection>')
    .description('Re-read the whole inventory now')
    .action(async (connection: string, _o: unknown, command: Command) =>
      printJson(
        await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).post(
          `/connections/${encodeURIComponent(connection)}/refresh`,
        ),
      ),
    );

  const tasks = program.command('tasks').description('Tasks: long actions and their progress');
  tasks
    .command('list', { isDefault: true })
    .description('Recent tasks, newest first')
    .option('--state <state>', 'queued, running, succeeded, failed or cancelled')
    .option('--limit <n>', 'how many', '20')
    .action(async (options: { state?: string; limit: string }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const query = new URLSearchParams({
        limit: options.limit,
        ...(options.state ? { state: options.state } : {}),
      });
      const list = await ApiClient.fromConfig(globals).get<{
        items: Array<
          TaskSummary & {
            createdAt: number;
            targetId: string | null;
            params: Record<string, unknown>;
          }
        >;
      }>(`/tasks?${query.toString()}`);
      if (globals.json) return printJson(list);
      printTable(
        ['ID', 'KIND', 'TARGET', 'STATE', 'PROGRESS', 'CREATED', 'ERROR'],
        list.items.map((t) => [
          t.id,
          t.kind,
          (t.params.vmName as string | undefined) ?? t.targetId,
          t.state,
          `${t.progress}%`,
          formatTime(t.createdAt),
          t.error ? `${t.error.code}: ${t.error.message}` : null,
        ]),
      );
    });
  tasks
    .command('show <id>')
    .description('One task')
    .action(async (id: string, _o: unknown, command: Command) =>
      printJson(
        await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).get(
          `/tasks/${encodeURIComponent(id)}`,
        ),
      ),
    );
  tasks
    .command('wait <id>')
    .description('Wait for a task to finish, with a progress bar')
    .action(async (id: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const done = await waitForTask(ApiClient.fromConfig(globals), id, {
        quiet: globals.json === true,
      });
      if (globals.json) printJson(done);
    });
  tasks
    .command('cancel <id>')
    .description('Cancel a queued or running task')
    .action(async (id: string, _o: unknown, command: Command) =>
      printJson(
        await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).post(
          `/tasks/${encodeURIComponent(id)}/cancel`,
        ),
      ),
    );

  program
    .command('events')
    .description('Recent events; --follow streams them live')
    .option('--follow', 'keep streaming new events')
    .option('--type <prefix>', 'only events whose type starts with this, e.g. task. or inventory.')
    .option('--since <seq>', 'events after this sequence number')
    .option('--limit <n>', 'how many recent events without --follow', '50')
    .action(
      async (
        options: { follow?: boolean; type?: string; since?: string; limit: string },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const client = ApiClient.fromConfig(globals);
        const show = (event: ZenithEvent) => {
          if (globals.json) process.stdout.write(`${JSON.stringify(event)}\n`);
          else
            process.stdout.write(
              `${String(event.seq).padStart(8)}  ${formatTime(event.ts)}  ${event.type.padEnd(22)} ${event.objectId ?? '-'}  ${JSON.stringify(event.data)}\n`,
            );
        };
        const filter = new URLSearchParams({
          ...(options.type ? { type: options.type } : {}),
          ...(options.since ? { since: options.since } : {}),
        });
        if (!options.follow) {
          filter.set('limit', options.limit);
          const page = await client.get<AnswerOf<typeof listEvents>>(
            `/events?${filter.toString()}`,
          );
          page.items.forEach(show);
          return;
        }
        for await (const event of client.stream(`/events/stream?${filter.toString()}`)) show(event);
      },
    );
}
