/**
 * Exact integer money. Amounts are integers of a fixed unit (minor units, or
 * micro-minor units while summing parts of an hour); decimals come in as text
 * and are never held in binary floating point.
 */
import { ZenithError } from '../../core/errors.js';

/** Sub-minor precision kept while summing the parts of one line: 10^-6 of a minor unit. */
export const microPerMinor = 1_000_000;

/** Number of minor-unit digits of an ISO 4217 currency (2 for EUR, 0 for JPY), from Intl. */
export function minorDigitsOf(currency: string): number {
  if (!/^[A-Z]{3}$/.test(currency))
    throw new ZenithError('ZEN_BAD_RATE_CARD', `currency '${currency}' is not an ISO 4217 code`, {
      currency,
    });
  return (
    new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
      .maximumFractionDigits ?? 2
  );
}

/** Parses a non-negative decimal text into an integer of 10^-scale units, exactly. */
export function parseDecimal(text: string, scale: number, what: string): number {
  const match = /^(\d{1,12})(?:\.(\d+))?$/.exec(text);
  if (!match)
    throw new ZenithError('ZEN_BAD_RATE_CARD', `${what} '${text}' is not a decimal number`, {
      field: what,
    });
  const fraction = match[2] ?? '';
  if (fraction.length > scale)
    throw new ZenithError(
      'ZEN_BAD_RATE_CARD',
      `${what} '${text}' has more than ${scale} decimal places`,
      { field: what },
    );
  const value = Number(match[1]) * 10 ** scale + Number(fraction.padEnd(scale, '0') || '0');
  if (!Number.isSafeInteger(value))
    throw new ZenithError('ZEN_BAD_RATE_CARD', `${what} '${text}' is too large`, { field: what });
  return value;
}

/** n / d rounded half up, for non-negative safe integers n and positive d. */
export function divRound(n: number, d: number): number {
  let q = Math.floor(n / d);
  let r = n - q * d;
  // The float quotient can be off by one near integers: correct it exactly.
  if (r < 0) {
    q -= 1;
    r += d;
  } else if (r >= d) {
    q += 1;
    r -= d;
  }
  return 2 * r >= d ? q + 1 : q;
}

/** a × b / d rounded half up, exactly: safe-integer arithmetic when it fits, BigInt when not. */
export function mulDivRound(a: number, b: number, d: number): number {
  const product = a * b;
  if (product <= Number.MAX_SAFE_INTEGER) return divRound(product, d);
  const big = BigInt(a) * BigInt(b);
  const dd = BigInt(d);
  return Number((2n * big + dd) / (2n * dd));
}

/** An integer of minor units as decimal text: 12345 → "123.45" for 2 digits. */
export function formatMinor(amount: number, digits: number): string {
  if (digits === 0) return String(amount);
  const sign = amount < 0 ? '-' : '';
  const text = String(Math.abs(amount)).padStart(digits + 1, '0');
  return `${sign}${text.slice(0, -digits)}.${text.slice(-digits)}`;
}
