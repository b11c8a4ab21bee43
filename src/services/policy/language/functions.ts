/**
 * The policy language's functions. Each declares its arity and the types of
 * its arguments (checked when the policy is compiled where the types are
 * known, and when it runs otherwise). `exists(path)` is a special form,
 * handled by the compiler.
 */
import type { Value } from './ast.js';
import { listContains, type StaticType } from './values.js';

export interface FunctionSpec {
  min: number;
  max: number;
  /** Allowed types per argument position; the last entry repeats for variadic functions. */
  args: StaticType[][];
  returns: StaticType;
  summary: string;
  /** `fail` throws an evaluation error at the call's position. */
  apply(args: Value[], fail: (reason: string) => never): Value;
}

const str = (value: Value) => value as string;
const num = (value: Value) => value as number;
const list = (value: Value): readonly Value[] =>
  value === null ? [] : (value as readonly Value[]);

function numbers(args: Value[]): number[] {
  const out: number[] = [];
  for (const arg of args) {
    if (Array.isArray(arg)) {
      for (const item of arg as readonly Value[]) if (typeof item === 'number') out.push(item);
    } else if (typeof arg === 'number') out.push(arg);
  }
  return out;
}

const numeric = (summary: string, fn: (n: number) => number): FunctionSpec => ({
  min: 1,
  max: 1,
  args: [['number', 'null']],
  returns: 'number',
  summary,
  apply: ([n]) => (n === null ? null : fn(num(n!))),
});

/** A function of one string (null gives null) answering a string. */
const stringToString = (summary: string, fn: (s: string) => string): FunctionSpec => ({
  min: 1,
  max: 1,
  args: [['string', 'null']],
  returns: 'string',
  summary,
  apply: ([s]) => (s === null ? null : fn(str(s!))),
});

/** A test of two strings: false when either is null. */
const stringTest = (
  summary: string,
  test: (s: string, other: string) => boolean,
): FunctionSpec => ({
  min: 2,
  max: 2,
  args: [
    ['string', 'null'],
    ['string', 'null'],
  ],
  returns: 'boolean',
  summary,
  apply: ([s, p]) => s !== null && p !== null && test(str(s!), str(p!)),
});

/** A test of two lists, a null one standing for the empty list. */
const listTest = (
  summary: string,
  test: (left: readonly Value[], right: readonly Value[]) => boolean,
): FunctionSpec => ({
  min: 2,
  max: 2,
  args: [
    ['list', 'null'],
    ['list', 'null'],
  ],
  returns: 'boolean',
  summary,
  apply: ([a, b]) => test(list(a!), list(b!)),
});

/** The smallest or largest number of the arguments and the lists among them (nulls skipped). */
const extreme = (summary: string, pick: (...values: number[]) => number): FunctionSpec => ({
  min: 1,
  max: 64,
  args: [['number', 'list', 'null']],
  returns: 'number',
  summary,
  apply: (args) => {
    const values = numbers(args);
    return values.length === 0 ? null : pick(...values);
  },
});

export const functions: Record<string, FunctionSpec> = {
  len: {
    min: 1,
    max: 1,
    args: [['list', 'string', 'null']],
    returns: 'number',
    summary: 'the number of items of a list, or of characters of a string (0 for null)',
    apply: ([x]) => (x === null ? 0 : (x as string | readonly Value[]).length),
  },
  lower: stringToString('the string in lower case', (s) => s.toLowerCase()),
  upper: stringToString('the string in upper case', (s) => s.toUpperCase()),
  startsWith: stringTest('whether the first string begins with the second', (s, p) =>
    s.startsWith(p),
  ),
  endsWith: stringTest('whether the first string ends with the second', (s, p) => s.endsWith(p)),
  contains: {
    min: 2,
    max: 2,
    args: [['list', 'string', 'null'], ['any']],
    returns: 'boolean',
    summary: 'whether a list holds the value, or a string holds the substring',
    apply: ([haystack, needle], fail) => {
      if (haystack === null || needle === null) return false;
      if (typeof haystack === 'string') {
        if (typeof needle !== 'string') fail('contains(string, x) needs x to be a string');
        return haystack.includes(needle as string);
      }
      return listContains(list(haystack!), needle!);
    },
  },
  overlaps: listTest('whether two lists share at least one item', (left, right) =>
    left.some((item) => listContains(right, item)),
  ),
  subset: listTest('whether every item of the first list is in the second', (left, right) =>
    left.every((item) => listContains(right, item)),
  ),
  tagValue: {
    min: 2,
    max: 2,
    args: [
      ['list', 'null'],
      ['string', 'null'],
    ],
    returns: 'string',
    summary: "the value of the first tag 'KEY:value' or 'KEY=value' in the list, or null",
    apply: ([tags, key]) => {
      if (key === null) return null;
      for (const tag of list(tags!)) {
        if (typeof tag !== 'string') continue;
        const k = str(key!);
        if (
          tag.length > k.length &&
          tag.startsWith(k) &&
          (tag[k.length] === ':' || tag[k.length] === '=')
        )
          return tag.slice(k.length + 1);
      }
      return null;
    },
  },
  min: extreme('the smallest of the numbers (lists are looked into; nulls are skipped)', Math.min),
  max: extreme('the largest of the numbers (lists are looked into; nulls are skipped)', Math.max),
  abs: numeric('the absolute value', Math.abs),
  round: numeric('rounded to the nearest whole number', Math.round),
  floor: numeric('rounded down', Math.floor),
  ceil: numeric('rounded up', Math.ceil),
  coalesce: {
    min: 1,
    max: 64,
    args: [['any']],
    returns: 'any',
    summary: 'the first argument that is not null (a default for a missing fact)',
    apply: (args) => args.find((a) => a !== null) ?? null,
  },
};

export const functionNames = Object.keys(functions);
