/**
 * Numbers on the command line. Commander hands over strings and the API takes JSON numbers (it does
 * not coerce bodies), so options are parsed here, with an error that names the option.
 */
import { ZenithError } from '../../api/errors.js';

/** A whole number such as `4` or `250` (no sign, no fraction, no unit). */
export function wholeNumber(text: string, option: string): number {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(Number(trimmed)))
    throw new ZenithError('ZEN_BAD_REQUEST', `${option} takes a whole number, not '${text}'`, {
      option,
    });
  return Number(trimmed);
}

/** A whole-number option that may be absent (then undefined); digits only. */
export function optionalWholeNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new Error(`${flag} must be a whole number`);
  return Number(value);
}

/** A decimal number such as `0.3`, `1` or `-2.5` (a ratio or weight, never money). */
export function decimalNumber(text: string, option: string): number {
  const trimmed = text.trim();
  if (!/^-?\d+(?:\.\d+)?$/.test(trimmed))
    throw new ZenithError('ZEN_BAD_REQUEST', `${option} takes a number, not '${text}'`, {
      option,
    });
  return Number(trimmed);
}
