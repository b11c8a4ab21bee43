/**
 * List filters: `KEY OP VALUE` terms, all of which must hold.
 *   power.state=running        equality (`|` separates alternatives: power.state=running|suspended)
 *   cpu.count>=4               numeric comparison: > >= < <=
 *   power.state!=stopped       inequality
 *   name~web                   case-insensitive substring
 *   user.owner                 the fact exists;  !user.owner  it does not
 */
import { ZenithError } from '../../core/errors.js';
import { factOf, type FactValue, type ManagedObject } from './model.js';

export type FilterOp = '=' | '!=' | '>' | '>=' | '<' | '<=' | '~' | 'exists' | 'absent';

export interface FilterTerm {
  key: string;
  op: FilterOp;
  values: string[];
  /** The source text, for error messages and explain. */
  text: string;
}

const termPattern = /^(!?)([a-zA-Z][a-zA-Z0-9_.:-]*)(?:(!=|>=|<=|=|>|<|~)(.*))?$/s;
const maxTermLength = 512;

export function parseFilter(text: string): FilterTerm {
  if (text.length > maxTermLength)
    throw badFilter(text, `a filter term may be at most ${maxTermLength} characters`);
  const match = termPattern.exec(text.trim());
  if (!match)
    throw badFilter(text, 'expected KEY OP VALUE, e.g. power.state=running or cpu.count>=4');
  const [, negation, key, op, rawValue] = match as unknown as [
    string,
    string,
    string,
    string | undefined,
    string | undefined,
  ];
  if (op === undefined) return { key, op: negation ? 'absent' : 'exists', values: [], text };
  if (negation)
    throw badFilter(text, "'!' only goes before a key alone (absence), e.g. !user.owner");
  const value = rawValue ?? '';
  if (value === '') throw badFilter(text, `a value is needed after '${op}'`);
  const values = op === '=' || op === '!=' ? value.split('|') : [value];
  if (['>', '>=', '<', '<='].includes(op) && !Number.isFinite(Number(value)))
    throw badFilter(text, `'${op}' compares numbers; '${value}' is not a number`);
  return { key, op: op as FilterOp, values, text };
}

function badFilter(text: string, reason: string): ZenithError {
  return new ZenithError('ZEN_BAD_FILTER', `bad filter '${text}': ${reason}`, {
    filter: text,
    reason,
  });
}

function valueMatches(fact: FactValue | undefined, wanted: string): boolean {
  if (fact === undefined || fact === null) return false;
  if (Array.isArray(fact)) return fact.includes(wanted);
  if (typeof fact === 'number') return Number(wanted) === fact;
  if (typeof fact === 'boolean') return String(fact) === wanted;
  return fact === wanted;
}

/** The string an equality index files a fact value under (arrays under each element). */
export function indexKeys(fact: FactValue | undefined): string[] {
  if (fact === undefined || fact === null) return [];
  if (Array.isArray(fact)) return fact;
  return [String(fact)];
}

export function matches(object: ManagedObject, term: FilterTerm): boolean {
  const fact = factOf(object, term.key);
  switch (term.op) {
    case 'exists':
      return fact !== undefined && fact !== null;
    case 'absent':
      return fact === undefined || fact === null;
    case '=':
      return term.values.some((v) => valueMatches(fact, v));
    case '!=':
      return !term.values.some((v) => valueMatches(fact, v));
    case '~': {
      const needle = term.values[0]!.toLowerCase();
      return indexKeys(fact).some((v) => v.toLowerCase().includes(needle));
    }
    default: {
      if (typeof fact !== 'number') return false;
      const bound = Number(term.values[0]);
      if (term.op === '>') return fact > bound;
      if (term.op === '>=') return fact >= bound;
      if (term.op === '<') return fact < bound;
      return fact <= bound;
    }
  }
}
