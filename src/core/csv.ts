/**
 * The one CSV writer, as RFC 4180 says: comma-separated, CRLF line ends, a field with a comma, quote
 * or line break quoted, quotes doubled. Text that a spreadsheet would run as a formula (it starts
 * with = + - @, a tab or a carriage return) is prefixed with a single quote, as OWASP recommends
 * against CSV injection: report cells carry names, ids and parameters that callers chose.
 */

/** A decimal number given as text (money, hours): written as it is, a number to a spreadsheet. */
export class CsvDecimal {
  constructor(readonly text: string) {
    if (!/^-?\d+(\.\d+)?$/.test(text)) throw new TypeError(`'${text}' is not a decimal number`);
  }
}

export function csvDecimal(text: string): CsvDecimal {
  return new CsvDecimal(text);
}

/** Text is neutralised; numbers (and decimals) stay numbers, so negative amounts are not text. */
export type CsvValue = string | number | boolean | CsvDecimal | null | undefined;

const formulaStart = /^[=+\-@\t\r]/;

function cellText(value: CsvValue): string {
  if (value === null || value === undefined) return '';
  if (value instanceof CsvDecimal) return value.text;
  // Infinity and NaN are no numbers to a spreadsheet: they are written as the text they are.
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  const text = String(value);
  return formulaStart.test(text) ? `'${text}` : text;
}

export function csvField(value: CsvValue): string {
  const text = cellText(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvLine(values: readonly CsvValue[]): string {
  return values.map(csvField).join(',');
}

/** A header line and one line per row, each ended by CRLF. */
export function toCsv(header: readonly string[], rows: ReadonlyArray<readonly CsvValue[]>): string {
  return [header, ...rows].map((row) => `${csvLine(row)}\r\n`).join('');
}
