/**
 * The policy language's binary operators, as a table like functions.ts: the
 * operand types each takes (checked when the policy is compiled, where the
 * types are known), the type it gives, and what it does at run time (where a
 * fact's type is known only then). Null rules: arithmetic and `+` give null
 * with null; ordering comparisons are false; `&` and `|` read null as the
 * empty list; equality compares null like any value; division by zero gives
 * null. Nothing is coerced.
 */
import type { BinaryOperator, Value } from './ast.js';
import { article, listContains, typeOf, valuesEqual, type StaticType } from './values.js';

/** How an operator reports a run-time type error at its position. */
export interface OperatorErrors {
  /** The two operands cannot be combined ("'+' cannot combine a number and a string"). */
  mismatch(a: Value, b: Value): never;
  fail(reason: string): never;
}

export interface OperatorSpec {
  /** The operand type pairs it takes; absent: any pair (equality). */
  takes?: ReadonlyArray<readonly [StaticType, StaticType]>;
  /** The result's type, from the operands' static types ('any' and 'null' are unknown). */
  returns(left: StaticType, right: StaticType): StaticType;
  apply(a: Value, b: Value, errors: OperatorErrors): Value;
}

const known = (type: StaticType) => type !== 'any' && type !== 'null';
const isList = (value: Value): value is readonly Value[] => Array.isArray(value);

const equality = (equal: boolean): OperatorSpec => ({
  returns: () => 'boolean',
  apply: (a, b) => valuesEqual(a, b) === equal,
});

const ordering = (compare: (a: number | string, b: number | string) => boolean): OperatorSpec => ({
  takes: [
    ['number', 'number'],
    ['string', 'string'],
  ],
  returns: () => 'boolean',
  apply: (a, b, errors) => {
    if (a === null || b === null) return false;
    if (
      (typeof a === 'number' && typeof b === 'number') ||
      (typeof a === 'string' && typeof b === 'string')
    )
      return compare(a, b);
    return errors.mismatch(a, b);
  },
});

const arithmetic = (compute: (a: number, b: number) => number | null): OperatorSpec => ({
  takes: [['number', 'number']],
  returns: () => 'number',
  apply: (a, b, errors) => {
    if (a === null || b === null) return null;
    if (typeof a === 'number' && typeof b === 'number') return compute(a, b);
    return errors.mismatch(a, b);
  },
});

const setOperation = (symbol: '&' | '|', union: boolean): OperatorSpec => {
  const asList = (value: Value, side: string, errors: OperatorErrors): readonly Value[] => {
    if (value === null) return [];
    if (isList(value)) return value;
    return errors.fail(`'${symbol}' needs lists; the ${side} side is ${article(typeOf(value))}`);
  };
  return {
    takes: [['list', 'list']],
    returns: () => 'list',
    apply: (a, b, errors) => {
      const left = asList(a, 'left', errors);
      const right = asList(b, 'right', errors);
      if (union) return [...left, ...right.filter((item) => !listContains(left, item))];
      return left.filter((item) => listContains(right, item));
    },
  };
};

export const operators: Record<BinaryOperator, OperatorSpec> = {
  '==': equality(true),
  '!=': equality(false),
  '<': ordering((a, b) => a < b),
  '<=': ordering((a, b) => a <= b),
  '>': ordering((a, b) => a > b),
  '>=': ordering((a, b) => a >= b),
  '+': {
    takes: [
      ['number', 'number'],
      ['string', 'string'],
    ],
    returns: (left, right) =>
      left === 'string' || right === 'string'
        ? 'string'
        : known(left) || known(right)
          ? 'number'
          : 'any',
    apply: (a, b, errors) => {
      if (a === null || b === null) return null;
      if (typeof a === 'number' && typeof b === 'number') return a + b;
      if (typeof a === 'string' && typeof b === 'string') return a + b;
      return errors.mismatch(a, b);
    },
  },
  '-': {
    takes: [
      ['number', 'number'],
      ['list', 'list'],
    ],
    returns: (left, right) =>
      left === 'list' || right === 'list' ? 'list' : known(left) || known(right) ? 'number' : 'any',
    apply: (a, b, errors) => {
      if (a === null || b === null) return null;
      if (typeof a === 'number' && typeof b === 'number') return a - b;
      if (isList(a) && isList(b)) return a.filter((item) => !listContains(b, item));
      return errors.mismatch(a, b);
    },
  },
  '*': arithmetic((a, b) => a * b),
  '/': arithmetic((a, b) => (b === 0 ? null : a / b)),
  '%': arithmetic((a, b) => (b === 0 ? null : a % b)),
  '&': setOperation('&', false),
  '|': setOperation('|', true),
};
