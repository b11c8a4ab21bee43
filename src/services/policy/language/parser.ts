/**
 * The policy language's parser: tokens → syntax tree, by recursive descent.
 * Precedence, loosest first: or · and · not · comparison and membership
 * (== != < <= > >= in, not in; they do not chain) · | (union) · & (intersection)
 * · + - · * / % · unary - · primary. The grammar is in docs/policies.md.
 */
import type { BinaryOperator, Node, RangeNode } from './ast.js';
import { tokenize, type Token } from './lexer.js';
import { policyError, type SourcePosition } from './source-position.js';

const comparisonOperators = new Set(['==', '!=', '<', '<=', '>', '>=']);
const maxDepth = 64;

export function parse(source: string): Node {
  return new Parser(source, tokenize(source)).parseAll();
}

class Parser {
  #index = 0;
  #depth = 0;

  constructor(
    private readonly source: string,
    private readonly tokens: Token[],
  ) {}

  parseAll(): Node {
    if (this.#peek().kind === 'end') throw this.#error(this.#peek().at, 'the expression is empty');
    const node = this.#expression();
    const next = this.#peek();
    if (next.kind !== 'end')
      throw this.#error(
        next.at,
        `unexpected ${describe(next)} after a complete expression (missing 'and' or 'or'?)`,
        { found: next.text },
      );
    return node;
  }

  #expression(): Node {
    if (++this.#depth > maxDepth)
      throw this.#error(this.#peek().at, `the expression nests deeper than ${maxDepth} levels`);
    try {
      return this.#or();
    } finally {
      this.#depth--;
    }
  }

  #or(): Node {
    let left = this.#and();
    while (this.#isKeyword('or')) {
      const at = this.#next().at;
      left = { type: 'logical', op: 'or', left, right: this.#and(), at };
    }
    return left;
  }

  #and(): Node {
    let left = this.#not();
    while (this.#isKeyword('and')) {
      const at = this.#next().at;
      left = { type: 'logical', op: 'and', left, right: this.#not(), at };
    }
    return left;
  }

  #not(): Node {
    if (this.#isKeyword('not')) {
      const at = this.#next().at;
      if (++this.#depth > maxDepth)
        throw this.#error(at, `the expression nests deeper than ${maxDepth} levels`);
      try {
        return { type: 'unary', op: 'not', operand: this.#not(), at };
      } finally {
        this.#depth--;
      }
    }
    return this.#comparison();
  }

  #comparison(): Node {
    const left = this.#union();
    const token = this.#peek();
    let node: Node;
    if (token.kind === 'operator' && comparisonOperators.has(token.text)) {
      this.#next();
      node = {
        type: 'binary',
        op: token.text as BinaryOperator,
        left,
        right: this.#union(),
        at: token.at,
      };
    } else if (this.#isKeyword('in') || (this.#isKeyword('not') && this.#isKeyword('in', 1))) {
      const negated = this.#isKeyword('not');
      if (negated) this.#next();
      this.#next();
      node = {
        type: 'membership',
        negated,
        element: left,
        collection: this.#collection(),
        at: token.at,
      };
    } else return left;
    const after = this.#peek();
    if ((after.kind === 'operator' && comparisonOperators.has(after.text)) || this.#isKeyword('in'))
      throw this.#error(
        after.at,
        `comparisons do not chain: join them with 'and' (e.g. a < b and b < c)`,
        { found: after.text },
      );
    return node;
  }

  #collection(): Node | RangeNode {
    const low = this.#union();
    if (!this.#isOperator('..')) return low;
    const at = this.#next().at;
    return { type: 'range', low, high: this.#union(), at };
  }

  #union(): Node {
    return this.#binaryLevel(['|'], () => this.#intersection());
  }

  #intersection(): Node {
    return this.#binaryLevel(['&'], () => this.#additive());
  }

  #additive(): Node {
    return this.#binaryLevel(['+', '-'], () => this.#multiplicative());
  }

  #multiplicative(): Node {
    return this.#binaryLevel(['*', '/', '%'], () => this.#unary());
  }

  #binaryLevel(ops: string[], operand: () => Node): Node {
    let left = operand();
    for (;;) {
      const token = this.#peek();
      if (token.kind !== 'operator' || !ops.includes(token.text)) return left;
      this.#next();
      left = {
        type: 'binary',
        op: token.text as BinaryOperator,
        left,
        right: operand(),
        at: token.at,
      };
    }
  }

  #unary(): Node {
    if (this.#isOperator('-')) {
      const at = this.#next().at;
      if (++this.#depth > maxDepth)
        throw this.#error(at, `the expression nests deeper than ${maxDepth} levels`);
      try {
        return { type: 'unary', op: '-', operand: this.#unary(), at };
      } finally {
        this.#depth--;
      }
    }
    return this.#primary();
  }

  #primary(): Node {
    const token = this.#next();
    switch (token.kind) {
      case 'number':
        return { type: 'literal', value: token.value!, at: token.at };
      case 'string':
        return { type: 'literal', value: token.text, at: token.at };
      case 'keyword':
        if (token.text === 'true' || token.text === 'false')
          return { type: 'literal', value: token.text === 'true', at: token.at };
        if (token.text === 'null') return { type: 'literal', value: null, at: token.at };
        break;
      case 'identifier':
        return this.#isPunctuation('(') ? this.#call(token) : this.#path(token);
      case 'punctuation':
        if (token.text === '(') {
          const inner = this.#expression();
          this.#expect(')', `to close the '(' at line ${token.at.line}, column ${token.at.column}`);
          return inner;
        }
        if (token.text === '[') return this.#list(token.at);
        break;
      default:
        break;
    }
    throw this.#error(token.at, `expected a value, a fact or '(' but found ${describe(token)}`, {
      found: token.text,
    });
  }

  #list(at: SourcePosition): Node {
    const items: Node[] = [];
    if (!this.#isPunctuation(']')) {
      do items.push(this.#expression());
      while (this.#accept(','));
    }
    this.#expect(']', `to close the list opened at line ${at.line}, column ${at.column}`);
    return { type: 'list', items, at };
  }

  #call(name: Token): Node {
    this.#next(); // (
    const args: Node[] = [];
    if (!this.#isPunctuation(')')) {
      do args.push(this.#expression());
      while (this.#accept(','));
    }
    this.#expect(')', `to close the arguments of ${name.text}()`);
    return { type: 'call', name: name.text, args, at: name.at };
  }

  /** root.segment.segment or root["key with-dashes"]: the fact key is the segments joined by dots. */
  #path(root: Token): Node {
    const segments: string[] = [];
    for (;;) {
      if (this.#accept('.')) {
        const segment = this.#next();
        if (segment.kind !== 'identifier' && segment.kind !== 'keyword')
          throw this.#error(
            segment.at,
            `expected a fact name after '.' but found ${describe(segment)}`,
            {
              found: segment.text,
            },
          );
        segments.push(segment.text);
      } else if (this.#isPunctuation('[')) {
        const open = this.#next();
        const key = this.#next();
        if (key.kind !== 'string')
          throw this.#error(
            key.at,
            `expected a quoted fact name inside [ ] but found ${describe(key)}`,
            {
              found: key.text,
            },
          );
        if (key.text === '') throw this.#error(key.at, 'a fact name cannot be empty');
        segments.push(key.text);
        this.#expect(']', `to close the '[' at line ${open.at.line}, column ${open.at.column}`);
      } else break;
    }
    return { type: 'path', root: root.text, key: segments.join('.'), at: root.at };
  }

  #expect(text: string, why: string): void {
    const token = this.#peek();
    if (token.kind === 'punctuation' && token.text === text) {
      this.#next();
      return;
    }
    throw this.#error(token.at, `expected '${text}' ${why} but found ${describe(token)}`, {
      expected: text,
      found: token.text,
    });
  }

  #accept(text: string): boolean {
    if (!this.#isPunctuation(text)) return false;
    this.#next();
    return true;
  }

  #isPunctuation(text: string): boolean {
    const token = this.#peek();
    return token.kind === 'punctuation' && token.text === text;
  }

  #isOperator(text: string): boolean {
    const token = this.#peek();
    return token.kind === 'operator' && token.text === text;
  }

  #isKeyword(text: string, ahead = 0): boolean {
    const token = this.tokens[Math.min(this.#index + ahead, this.tokens.length - 1)]!;
    return token.kind === 'keyword' && token.text === text;
  }

  #peek(): Token {
    return this.tokens[this.#index]!;
  }

  #next(): Token {
    const token = this.tokens[this.#index]!;
    if (this.#index < this.tokens.length - 1) this.#index++;
    return token;
  }

  #error(at: SourcePosition, reason: string, extra: Record<string, unknown> = {}) {
    return policyError('ZEN_POLICY_SYNTAX', this.source, at, reason, extra);
  }
}

function describe(token: Token): string {
  switch (token.kind) {
    case 'end':
      return 'the end of the expression';
    case 'string':
      return `the string '${token.text}'`;
    case 'number':
      return `the number ${token.text}`;
    default:
      return `'${token.text}'`;
  }
}
