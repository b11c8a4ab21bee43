/**
 * The policy language's lexer: text → tokens, each with its line and column.
 * Whitespace and `#` comments separate tokens; numbers may carry a size unit
 * (KiB … TiB, KB … TB) or `%`.
 */
import { policyError, type SourcePosition } from './source-position.js';

export type TokenKind =
  'number' | 'string' | 'identifier' | 'keyword' | 'operator' | 'punctuation' | 'end';

export interface Token {
  kind: TokenKind;
  /** The token's text as written (for a string: its value, escapes resolved). */
  text: string;
  /** A number literal's value, units applied. */
  value?: number;
  at: SourcePosition;
}

export const keywords = new Set(['and', 'or', 'not', 'in', 'true', 'false', 'null']);

const unitFactors: Record<string, number> = {
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  '%': 0.01,
};

/** Longest first, so that `<=` is not read as `<` then `=`. */
const operators = ['..', '==', '!=', '<=', '>=', '<', '>', '+', '-', '*', '/', '%', '&', '|'];
const punctuation = new Set(['(', ')', '[', ']', ',', '.']);
const escapes: Record<string, string> = { n: '\n', t: '\t', '\\': '\\', "'": "'", '"': '"' };

export const maxPolicySourceLength = 16_384;

export function tokenize(source: string): Token[] {
  if (source.length > maxPolicySourceLength)
    throw policyError(
      'ZEN_POLICY_SYNTAX',
      source.slice(0, 200),
      { offset: 0, line: 1, column: 1 },
      `an expression may be at most ${maxPolicySourceLength} characters`,
    );
  const tokens: Token[] = [];
  let offset = 0;
  let line = 1;
  let lineStart = 0;
  const here = (): SourcePosition => ({ offset, line, column: offset - lineStart + 1 });

  while (offset < source.length) {
    const char = source[offset]!;
    if (char === '\n') {
      offset++;
      line++;
      lineStart = offset;
      continue;
    }
    if (char === ' ' || char === '\t' || char === '\r') {
      offset++;
      continue;
    }
    if (char === '#') {
      while (offset < source.length && source[offset] !== '\n') offset++;
      continue;
    }
    const at = here();
    if (isDigit(char)) {
      tokens.push(readNumber(source, at));
      offset = at.offset + tokens[tokens.length - 1]!.text.length;
      continue;
    }
    if (isIdentifierStart(char)) {
      let end = offset + 1;
      while (end < source.length && isIdentifierPart(source[end]!)) end++;
      const text = source.slice(offset, end);
      tokens.push({ kind: keywords.has(text) ? 'keyword' : 'identifier', text, at });
      offset = end;
      continue;
    }
    if (char === '"' || char === "'") {
      const { token, end } = readString(source, at);
      tokens.push(token);
      offset = end;
      continue;
    }
    const operator = operators.find((op) => source.startsWith(op, offset));
    if (operator) {
      tokens.push({ kind: 'operator', text: operator, at });
      offset += operator.length;
      continue;
    }
    if (punctuation.has(char)) {
      tokens.push({ kind: 'punctuation', text: char, at });
      offset++;
      continue;
    }
    const hint = char === '=' ? " (compare with '==')" : char === '!' ? " (negate with 'not')" : '';
    throw policyError('ZEN_POLICY_SYNTAX', source, at, `unexpected character '${char}'${hint}`, {
      found: char,
    });
  }
  tokens.push({ kind: 'end', text: '', at: here() });
  return tokens;
}

function readNumber(source: string, at: SourcePosition): Token {
  const match = /^(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(KiB|MiB|GiB|TiB|KB|MB|GB|TB|%)?/.exec(
    source.slice(at.offset),
  )!;
  const [text, digits, unit] = match as unknown as [string, string, string | undefined];
  const next = source[at.offset + text.length];
  // `4..8` is a range of two integers, not `4.` then `.8`: the pattern wants a digit after a '.'.
  if (next !== undefined && isIdentifierPart(next))
    throw policyError(
      'ZEN_POLICY_SYNTAX',
      source,
      at,
      `'${text}${next}…' is not a number: units are KiB, MiB, GiB, TiB, KB, MB, GB, TB and %`,
    );
  const value = Number(digits) * (unit ? unitFactors[unit]! : 1);
  return { kind: 'number', text, value, at };
}

function readString(source: string, at: SourcePosition): { token: Token; end: number } {
  const quote = source[at.offset]!;
  let value = '';
  let offset = at.offset + 1;
  while (offset < source.length) {
    const char = source[offset]!;
    if (char === quote) return { token: { kind: 'string', text: value, at }, end: offset + 1 };
    if (char === '\n') break;
    if (char === '\\') {
      const escaped = source[offset + 1];
      const replacement = escaped === undefined ? undefined : escapes[escaped];
      if (replacement === undefined) {
        const column = at.column + (offset - at.offset);
        throw policyError(
          'ZEN_POLICY_SYNTAX',
          source,
          { offset, line: at.line, column },
          `unknown escape '\\${escaped ?? ''}' in a string (use \\n, \\t, \\\\, \\' or \\")`,
        );
      }
      value += replacement;
      offset += 2;
      continue;
    }
    value += char;
    offset++;
  }
  throw policyError(
    'ZEN_POLICY_SYNTAX',
    source,
    at,
    `unterminated string: a closing ${quote} is missing on this line`,
  );
}

function isDigit(char: string): boolean {
  return char >= '0' && char <= '9';
}

function isIdentifierStart(char: string): boolean {
  return (char >= 'a' && char <= 'z') || (char >= 'A' && char <= 'Z') || char === '_';
}

function isIdentifierPart(char: string): boolean {
  return isIdentifierStart(char) || isDigit(char);
}
