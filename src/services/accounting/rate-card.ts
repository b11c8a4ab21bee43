/**
 * Rate cards: prices per resource unit chosen by a small matcher over host
 * facts, time-of-use windows in a named zone, fixed monthly charges matched
 * on VM facts, and per-group discounts. A card is validated once into integer
 * prices (micro-minor units per unit-hour) before any metering uses it.
 */
import { ZenithError } from '../../core/errors.js';
import { ownFact, type FactValue, type Facts } from '../inventory/model.js';
import { assertTimeZone } from './local-time.js';
import { microPerMinor, minorDigitsOf, parseDecimal } from './money.js';

/** Fact key → wanted value, or a list of accepted values. Every key must match. */
export type FactMatch = Record<string, FactValue | FactValue[]>;

export interface TimeWindowSpec {
  name: string;
  /** Lower-case three-letter weekdays: mon … sun. */
  days: string[];
  /** Local hours [from, to): 0–24. */
  hours: [number, number];
}

export interface RateSpec {
  /** Host facts (plus cluster, datacenter, host: names or ids). Empty matches every host. */
  match?: FactMatch;
  /** Only inside this window; without it, at any time. */
  window?: string;
  /** Major currency units per vCPU-hour while running, as decimal text. */
  vcpuHour?: string;
  /** Per GiB-hour of allocated memory while running or suspended. */
  memoryGiBHour?: string;
  /** Per GiB-hour of allocated disk in every power state. */
  diskGiBHour?: string;
  /** Per kWh the host's machine draws (sampled from its BMC), shared by the VMs running on it. */
  kWh?: string;
}

export interface FixedChargeSpec {
  name: string;
  /** VM facts (and tag); empty matches every VM: a per-VM charge. */
  match?: FactMatch;
  /** Per VM per calendar month, prorated by the time the VM is known. */
  monthly: string;
}

export interface DiscountSpec {
  group: string;
  /** Percent off, up to two decimals. */
  percent: string;
}

export interface RateCardBody {
  currency: string;
  timeZone: string;
  note?: string;
  windows?: TimeWindowSpec[];
  rates: RateSpec[];
  fixed?: FixedChargeSpec[];
  discounts?: DiscountSpec[];
}

export interface RateCardVersion {
  id: string;
  version: number;
  effectiveFrom: number;
  body: RateCardBody;
  createdBy: string;
  createdAt: number;
}

/** Integer prices in micro-minor units per unit-hour (energy: per kWh). */
export interface UnitPrices {
  vcpu: number;
  memoryGiB: number;
  disk: number;
  kWh: number;
}

export interface CompiledRateCard {
  card: RateCardVersion;
  minorDigits: number;
  windowOf(weekday: number, hour: number): string | null;
  windows: string[];
  /** Some rule prices energy (kWh): reports then show energy and its cost. */
  pricesEnergy: boolean;
  /** First rule that matches the host facts in this window; zero prices when none does. */
  pricesFor(hostFacts: Facts, window: string | null): UnitPrices;
  /** Fixed monthly charges of a VM, in micro-minor units per month. */
  fixedFor(vmFacts: Facts, tags: string[]): number;
  /** Discount in basis points (1/100 of a percent) for a group. */
  discountFor(group: string): number;
}

const dayNames = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const zero: UnitPrices = { vcpu: 0, memoryGiB: 0, disk: 0, kWh: 0 };

function bad(message: string, field: string): ZenithError {
  return new ZenithError('ZEN_BAD_RATE_CARD', message, { field });
}

export function matches(match: FactMatch | undefined, facts: Facts, tags: string[] = []): boolean {
  if (!match) return true;
  for (const [key, wanted] of Object.entries(match)) {
    const accepted = Array.isArray(wanted) ? wanted : [wanted];
    if (key === 'tag') {
      if (!accepted.some((value) => typeof value === 'string' && tags.includes(value)))
        return false;
      continue;
    }
    const actual = ownFact(facts, key);
    if (!accepted.some((value) => JSON.stringify(value) === JSON.stringify(actual))) return false;
  }
  return true;
}

/** Validates a body and turns it into integer prices; throws ZEN_BAD_RATE_CARD naming the field. */
export function compileRateCard(card: RateCardVersion): CompiledRateCard {
  const body = card.body;
  const minorDigits = minorDigitsOf(body.currency);
  assertTimeZone(body.timeZone);
  const scale = minorDigits + 6;
  const windows = body.windows ?? [];
  const windowNames = new Set<string>();
  const hourTable: Array<Array<string | null>> = dayNames.map(() =>
    Array.from({ length: 24 }, () => null),
  );
  windows.forEach((window, i) => {
    if (windowNames.has(window.name))
      throw bad(`window '${window.name}' is defined twice`, `windows/${i}`);
    windowNames.add(window.name);
    const [fromHour, toHour] = window.hours;
    if (!(
      Number.isInteger(fromHour) &&
      Number.isInteger(toHour) &&
      fromHour >= 0 &&
      toHour <= 24 &&
      fromHour < toHour
    ))
      throw bad(
        `window '${window.name}' hours must be whole hours with 0 ≤ from < to ≤ 24`,
        `windows/${i}/hours`,
      );
    for (const day of window.days) {
      const d = dayNames.indexOf(day);
      if (d < 0)
        throw bad(
          `window '${window.name}': '${day}' is not one of ${dayNames.join(', ')}`,
          `windows/${i}/days`,
        );
      // The first window listed wins where windows overlap.
      for (let h = fromHour; h < toHour; h++) hourTable[d]![h] ??= window.name;
    }
  });
  const rates = body.rates.map((rate, i) => {
    if (rate.window !== undefined && !windowNames.has(rate.window))
      throw bad(
        `rate ${i} names window '${rate.window}', which the card does not define`,
        `rates/${i}/window`,
      );
    const price = (text: string | undefined, field: string) =>
      text === undefined ? 0 : parseDecimal(text, scale, `rates/${i}/${field}`);
    return {
      match: rate.match,
      window: rate.window,
      prices: {
        vcpu: price(rate.vcpuHour, 'vcpuHour'),
        memoryGiB: price(rate.memoryGiBHour, 'memoryGiBHour'),
        disk: price(rate.diskGiBHour, 'diskGiBHour'),
        kWh: price(rate.kWh, 'kWh'),
      },
    };
  });
  const fixed = (body.fixed ?? []).map((charge, i) => ({
    match: charge.match,
    monthlyMicro: parseDecimal(charge.monthly, minorDigits, `fixed/${i}/monthly`) * microPerMinor,
  }));
  const discounts = new Map<string, number>();
  (body.discounts ?? []).forEach((discount, i) => {
    const basisPoints = parseDecimal(discount.percent, 2, `discounts/${i}/percent`);
    if (basisPoints > 10_000)
      throw bad(`discount for '${discount.group}' is over 100%`, `discounts/${i}/percent`);
    discounts.set(discount.group, basisPoints);
  });
  return {
    card,
    minorDigits,
    windows: [...windowNames],
    pricesEnergy: body.rates.some((rate) => rate.kWh !== undefined),
    windowOf: (weekday, hour) => hourTable[weekday]?.[hour] ?? null,
    pricesFor(hostFacts, window) {
      for (const rate of rates)
        if ((rate.window === undefined || rate.window === window) && matches(rate.match, hostFacts))
          return rate.prices;
      return zero;
    },
    fixedFor(vmFacts, tags) {
      let total = 0;
      for (const charge of fixed)
        if (matches(charge.match, vmFacts, tags)) total += charge.monthlyMicro;
      return total;
    },
    discountFor: (group) => discounts.get(group) ?? 0,
  };
}
