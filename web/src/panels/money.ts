/**
 * Money as the API gives it: integer minor units (cents) and the currency's number of minor
 * digits. Formatted from the integer's digits, never through binary floating point.
 */
export function formatMinor(minor: number, minorDigits: number, currency: string | null): string {
  const negative = minor < 0;
  const digits = String(Math.abs(Math.trunc(minor))).padStart(minorDigits + 1, '0');
  const whole = digits.slice(0, digits.length - minorDigits).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction = minorDigits > 0 ? `.${digits.slice(digits.length - minorDigits)}` : '';
  return `${negative ? '-' : ''}${whole}${fraction}${currency ? ` ${currency}` : ''}`;
}
