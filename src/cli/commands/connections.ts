/** `zenith connections`: connections to hypervisors and managers. */
import type { Command } from 'commander';
import type { listConnections } from '../../api/connections.js';
import type { AnswerOf } from '../../api/operation.js';
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson } from '../output.js';
import { addListCommand, collect, type Globals } from './globals.js';

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

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text.trim();
}

export function registerConnections(program: Command): void {
  const connections = program
    .command('connections')
    .description('Connections to hypervisors and managers');
  addListCommand<AnswerOf<typeof listConnections>>(connections, {
    description: 'List connections',
    path: '/connections',
    headers: ['NAME', 'TYPE', 'STATE', 'LAST SYNC', 'ERROR', 'ID'],
    row: (c) => [
      c.name,
      c.simulated ? `${c.type} (simulated)` : c.type,
      c.state,
      formatTime(c.lastSyncAt),
      c.lastError,
      c.id,
    ],
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
}
