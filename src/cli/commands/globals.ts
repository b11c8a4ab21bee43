/** What every command shares: the global options, repeatable options, and the API client they give. */
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { printJson, printTable } from '../output.js';

/** The options of `zenith` itself, which every command reads. */
export interface Globals {
  json?: boolean;
  server?: string;
}

/** Collects a repeatable option's values (`--set a=1 --set b=2`). */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** The API client of a command (its --server, or the remembered session) and whether --json was asked. */
export function clientOf(command: Command): { api: ApiClient; json: boolean } {
  const globals = command.optsWithGlobals<Globals>();
  return { api: ApiClient.fromConfig(globals), json: globals.json === true };
}

/** Sends one request with the command's client and prints the answer as JSON (for commands that show what they changed). */
export async function printAnswer(
  command: Command,
  method: string,
  path: string,
  body?: unknown,
): Promise<void> {
  printJson(await clientOf(command).api.request(method, path, body));
}

/** A cell of a printed table (null and undefined print as '-'). */
type Cell = string | number | boolean | null | undefined;

/**
 * The usual list command: GET `path` with the command's client, then the answer as JSON with
 * --json, otherwise a table of `headers` with one row per item.
 */
export async function printList<Answer extends { items: readonly unknown[] }>(
  command: Command,
  path: string,
  headers: string[],
  row: (item: Answer['items'][number]) => Cell[],
): Promise<void> {
  const { api, json } = clientOf(command);
  const answer = await api.get<Answer>(path);
  if (json) return printJson(answer);
  printTable(headers, answer.items.map(row));
}

/**
 * The usual `list` subcommand, its group's default: the list at `path` (which may depend on the
 * command's options) printed by printList.
 */
export function addListCommand<Answer extends { items: readonly unknown[] }, Options = unknown>(
  group: Command,
  list: {
    description: string;
    path: string | ((options: Options) => string);
    headers: string[];
    row: (item: Answer['items'][number]) => Cell[];
  },
): Command {
  return group
    .command('list', { isDefault: true })
    .description(list.description)
    .action(async (options: Options, command: Command) =>
      printList<Answer>(
        command,
        typeof list.path === 'string' ? list.path : list.path(options),
        list.headers,
        list.row,
      ),
    );
}

/**
 * The usual `show <name>` subcommand: GET the object at `path(name)`, then the answer as JSON with
 * --json, otherwise as `print` writes it.
 */
export function addShowCommand<Shown>(
  group: Command,
  show: {
    usage: string;
    description: string;
    path: (name: string) => string;
    print: (shown: Shown) => void;
  },
): Command {
  return group
    .command(show.usage)
    .description(show.description)
    .action(async (name: string, _options: unknown, command: Command) => {
      const { api, json } = clientOf(command);
      const shown = await api.get<Shown>(show.path(name));
      if (json) return printJson(shown);
      show.print(shown);
    });
}

/** The options of a list filtered by state and cut at a number of items. */
export interface StateAndLimit {
  state?: string;
  limit: string;
}

/** The query string of a list filtered by --state and cut at --limit. */
export function stateAndLimitQuery(options: StateAndLimit): string {
  return new URLSearchParams({
    limit: options.limit,
    ...(options.state ? { state: options.state } : {}),
  }).toString();
}
