/** Human tables by default, JSON with --json; errors as "error CODE: message" with a hint. */
import Table from 'cli-table3';
import { errorCatalogue, isZenithError } from '../api/errors.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(
  headers: string[],
  rows: Array<Array<string | number | boolean | null | undefined>>,
): void {
  const table = new Table({
    head: headers,
    style: { head: [], border: [] },
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  for (const row of rows)
    table.push(row.map((cell) => (cell === null || cell === undefined ? '-' : String(cell))));
  process.stdout.write(`${table.toString()}\n`);
}

export function printKeyValues(pairs: Array<[string, unknown]>): void {
  const width = Math.max(...pairs.map(([k]) => k.length));
  for (const [key, value] of pairs)
    process.stdout.write(
      `${key.padEnd(width)}  ${typeof value === 'object' && value !== null ? JSON.stringify(value) : String((value as string | number | boolean | undefined) ?? '-')}\n`,
    );
}

export function formatTime(ms: number | null | undefined): string {
  return ms === null || ms === undefined
    ? '-'
    : new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');
}

export function formatBytes(bytes: unknown): string {
  if (typeof bytes !== 'number') return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value % 1 === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Exit codes: 1 a refused or failed request, 2 bad usage, 3 not authenticated, 4 not found, 5 the server unreachable. */
export function exitCodeFor(code: string): number {
  if (
    code === 'ZEN_UNAUTHENTICATED' ||
    code === 'ZEN_TOKEN_EXPIRED' ||
    code === 'ZEN_BAD_CREDENTIALS'
  )
    return 3;
  if (code === 'ZEN_NOT_FOUND') return 4;
  if (code === 'ZEN_CONNECTION_FAILED') return 5;
  if (
    code === 'ZEN_BAD_REQUEST' ||
    code === 'ZEN_BAD_FILTER' ||
    code === 'ZEN_CONFIG_INVALID' ||
    code === 'ZEN_POLICY_SYNTAX' ||
    code === 'ZEN_POLICY_INVALID'
  )
    return 2;
  return 1;
}

export function reportError(error: unknown): number {
  if (isZenithError(error)) {
    process.stderr.write(`error ${error.code}: ${error.message}\n`);
    const hint =
      error.code === 'ZEN_UNAUTHENTICATED' || error.code === 'ZEN_TOKEN_EXPIRED'
        ? 'run: zenith login'
        : errorCatalogue[error.code].summary;
    process.stderr.write(`  ${hint}\n`);
    return exitCodeFor(error.code);
  }
  process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
  return 1;
}
