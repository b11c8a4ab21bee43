/** Values of the policy language at run time, and the static types the compiler infers. */
import type { Value } from './ast.js';

export type StaticType = 'number' | 'string' | 'boolean' | 'list' | 'null' | 'any';

/** Array.isArray narrows to any[]; this keeps the element type. */
export function isList(value: Value): value is readonly Value[] {
  return Array.isArray(value);
}

export function typeOf(value: Value): Exclude<StaticType, 'any'> {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'list';
  return typeof value as 'number' | 'string' | 'boolean';
}

/** Names a type for a message: "a number", "a list". */
export function article(type: StaticType): string {
  switch (type) {
    case 'null':
      return 'null';
    case 'any':
      return 'any value';
    case 'list':
      return 'a list';
    default:
      return `a ${type}`;
  }
}

/** Equality without coercion: 1 == "1" is false; lists are equal element by element. */
export function valuesEqual(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (isList(a) && isList(b)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!valuesEqual(a[i]!, b[i]!)) return false;
    return true;
  }
  return false;
}

export function listContains(list: readonly Value[], item: Value): boolean {
  if (item === null || typeof item !== 'object') return list.includes(item);
  return list.some((element) => valuesEqual(element, item));
}

/** Shown in results and explanations: strings quoted, lists bracketed. */
export function formatValue(value: Value): string {
  if (value === null) return 'null';
  if (isList(value)) return `[${value.map(formatValue).join(', ')}]`;
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}
