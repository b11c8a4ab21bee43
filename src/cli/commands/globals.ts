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
