/**
 * Compiles a syntax tree into a closure over facts. Types are inferred where
 * they are known (literals, operators, functions, built-in facts), so that
 * most mistakes are refused when a policy is saved, with their line and
 * column; facts are typed only at run time, where a mismatch throws
 * ZEN_POLICY_EVALUATION at the operator's position. Constant sub-trees are
 * folded once.
 *
 * Semantics in brief (docs/policies.md has them in full): a missing fact is
 * null; arithmetic with null gives null; an ordering comparison with null is
 * false; `and`, `or`, `not` read null as false; set operations read null as
 * the empty list; division by zero gives null; nothing is coerced (1 == "1" is
 * false).
 */
import type { FactValue } from '../../inventory/model.js';
import { isRoot, roots, type BinaryOperator, type Node, type Root, type Value } from './ast.js';
import { functionNames, functions } from './functions.js';
import { operators, type OperatorErrors } from './operators.js';
import { parse } from './parser.js';
import { policyError, type SourcePosition } from './source-position.js';
import { article, formatValue, listContains, typeOf, type StaticType } from './values.js';

/** Where an evaluator reads the facts of one object. */
export interface FactSource {
  fact(key: string): FactValue | undefined;
}

export type PolicyEnv = { readonly [R in Root]?: FactSource | undefined };

export interface CompiledExpression {
  readonly source: string;
  readonly type: StaticType;
  /** The objects the expression reads: lets callers evaluate host-only parts once per host. */
  readonly roots: ReadonlySet<Root>;
  /** The facts it reads, as `root.key`. */
  readonly reads: ReadonlySet<string>;
  evaluate(env: PolicyEnv): Value;
}

export interface CompileOptions {
  /** Objects the expression may read; all when absent. */
  allowedRoots?: readonly Root[];
  /** What the expression is, for messages: "the 'when' condition". */
  purpose?: string;
}

type Evaluator = (env: PolicyEnv) => Value;

interface Compiled {
  type: StaticType;
  evaluate: Evaluator;
  constant: boolean;
}

/** Facts every object has, with their types. */
const builtinTypes: Record<string, StaticType> = {
  name: 'string',
  id: 'string',
  kind: 'string',
  status: 'string',
  tags: 'list',
};

export function compileExpression(
  source: string,
  options: CompileOptions = {},
): CompiledExpression {
  const tree = parse(source);
  const used = new Set<Root>();
  const reads = new Set<string>();
  const compiled = new Compiler(source, options, used, reads).compile(tree);
  return { source, type: compiled.type, roots: used, reads, evaluate: compiled.evaluate };
}

/** A condition (constraint, `when`, selector): true or false. */
export function compileCondition(source: string, options: CompileOptions = {}): CompiledExpression {
  const compiled = compileExpression(source, options);
  if (!['boolean', 'null', 'any'].includes(compiled.type))
    throw policyError(
      'ZEN_POLICY_INVALID',
      source,
      { offset: 0, line: 1, column: 1 },
      `${options.purpose ?? 'a condition'} must be true or false, but this expression gives ${article(compiled.type)}`,
      { type: compiled.type },
    );
  return compiled;
}

/** A score (preference): a number, or a condition that counts 1 when true. */
export function compileScore(source: string, options: CompileOptions = {}): CompiledExpression {
  const compiled = compileExpression(source, options);
  if (!['boolean', 'number', 'null', 'any'].includes(compiled.type))
    throw policyError(
      'ZEN_POLICY_INVALID',
      source,
      { offset: 0, line: 1, column: 1 },
      `${options.purpose ?? 'a preference'} must give a number or true/false, but this expression gives ${article(compiled.type)}`,
      { type: compiled.type },
    );
  return compiled;
}

/** A condition's verdict: only `true` passes (null and false do not). */
export function holds(expression: CompiledExpression, env: PolicyEnv): boolean {
  return expression.evaluate(env) === true;
}

/** A score's value: numbers as they are, true as 1, false and null as 0. */
export function scoreOf(expression: CompiledExpression, env: PolicyEnv): number {
  const value = expression.evaluate(env);
  if (typeof value === 'number') return Number.isFinite(value) ? value : 0;
  if (value === true) return 1;
  if (value === false || value === null) return 0;
  throw new TypeError('unreachable: a score expression gave a non-score value');
}

class Compiler {
  constructor(
    private readonly source: string,
    private readonly options: CompileOptions,
    private readonly used: Set<Root>,
    private readonly reads: Set<string>,
  ) {}

  compile(node: Node): Compiled {
    const compiled = this.#compile(node);
    if (!compiled.constant || compiled.type === 'null') return compiled;
    // Fold constants once; a constant that cannot be evaluated is a mistake in the policy.
    let value: Value;
    try {
      value = compiled.evaluate({});
    } catch (error) {
      const details = (
        error as { details?: { line?: number; column?: number; offset?: number; reason?: string } }
      ).details;
      if (details?.reason && details.line !== undefined)
        throw policyError(
          'ZEN_POLICY_INVALID',
          this.source,
          { offset: details.offset ?? 0, line: details.line, column: details.column ?? 1 },
          details.reason,
        );
      throw error;
    }
    return { type: typeOf(value), evaluate: () => value, constant: true };
  }

  #compile(node: Node): Compiled {
    switch (node.type) {
      case 'literal': {
        const value = node.value;
        return { type: typeOf(value), evaluate: () => value, constant: true };
      }
      case 'list': {
        const items = node.items.map((item) => this.compile(item));
        const evaluators = items.map((item) => item.evaluate);
        return {
          type: 'list',
          evaluate: (env) => {
            const out: Value[] = new Array<Value>(evaluators.length);
            for (let i = 0; i < evaluators.length; i++) out[i] = evaluators[i]!(env);
            return out;
          },
          constant: items.every((item) => item.constant),
        };
      }
      case 'path':
        return this.#path(node);
      case 'unary':
        return node.op === 'not'
          ? this.#not(node.operand, node.at)
          : this.#negate(node.operand, node.at);
      case 'logical':
        return this.#logical(node.op, node.left, node.right, node.at);
      case 'binary':
        return this.#binary(node.op, node.left, node.right, node.at);
      case 'membership':
        return this.#membership(node);
      case 'call':
        return this.#call(node);
    }
  }

  #path(node: Extract<Node, { type: 'path' }>): Compiled {
    const { root, key, at } = node;
    if (!isRoot(root)) {
      const hint = functionNames.includes(root)
        ? ` (${root} is a function: call it as ${root}(…))`
        : '';
      throw this.#invalid(
        at,
        `unknown name '${root}': facts are read from ${(this.options.allowedRoots ?? roots).join(', ')}${hint}`,
        {
          name: root,
        },
      );
    }
    if (key === '')
      throw this.#invalid(
        at,
        `'${root}' alone is not a value: name one of its facts, e.g. ${root}.name`,
      );
    if (this.options.allowedRoots && !this.options.allowedRoots.includes(root))
      throw this.#invalid(
        at,
        `${this.options.purpose ?? 'this expression'} may read only ${this.options.allowedRoots.join(', ')}, not ${root}.${key}`,
        { root },
      );
    this.used.add(root);
    this.reads.add(`${root}.${key}`);
    const namespaced = `${root}.${key}`;
    return {
      type: builtinTypes[key] ?? 'any',
      constant: false,
      evaluate: (env) => {
        const source = env[root];
        if (source === undefined) return null;
        const direct = source.fact(key);
        if (direct !== undefined) return direct;
        // `host.state` finds the fact host.state; `host.cpu.cores` finds cpu.cores.
        const fallback = source.fact(namespaced);
        return fallback === undefined ? null : fallback;
      },
    };
  }

  #not(operand: Node, at: SourcePosition): Compiled {
    const inner = this.compile(operand);
    this.#expect(inner, ['boolean', 'null'], at, "'not' needs true or false");
    const evaluate = inner.evaluate;
    const truth = this.#truth("'not'", at);
    return { type: 'boolean', constant: inner.constant, evaluate: (env) => !truth(evaluate(env)) };
  }

  #negate(operand: Node, at: SourcePosition): Compiled {
    const inner = this.compile(operand);
    this.#expect(inner, ['number', 'null'], at, "'-' needs a number");
    const evaluate = inner.evaluate;
    return {
      type: 'number',
      constant: inner.constant,
      evaluate: (env) => {
        const value = evaluate(env);
        if (value === null) return null;
        if (typeof value !== 'number')
          throw this.#runtime(at, `'-' needs a number, not ${article(typeOf(value))}`);
        return -value;
      },
    };
  }

  #logical(op: 'and' | 'or', leftNode: Node, rightNode: Node, at: SourcePosition): Compiled {
    const left = this.compile(leftNode);
    const right = this.compile(rightNode);
    this.#expect(left, ['boolean', 'null'], at, `'${op}' needs true or false on its left`);
    this.#expect(right, ['boolean', 'null'], at, `'${op}' needs true or false on its right`);
    const l = left.evaluate;
    const r = right.evaluate;
    const truth = this.#truth(`'${op}'`, at);
    return {
      type: 'boolean',
      constant: left.constant && right.constant,
      evaluate:
        op === 'and'
          ? (env) => truth(l(env)) && truth(r(env))
          : (env) => truth(l(env)) || truth(r(env)),
    };
  }

  #binary(op: BinaryOperator, leftNode: Node, rightNode: Node, at: SourcePosition): Compiled {
    const left = this.compile(leftNode);
    const right = this.compile(rightNode);
    const constant = left.constant && right.constant;
    const l = left.evaluate;
    const r = right.evaluate;
    const mismatch = (a: Value, b: Value) =>
      this.#runtime(at, `'${op}' cannot combine ${article(typeOf(a))} and ${article(typeOf(b))}`);
    const known = (c: Compiled) => c.type !== 'any' && c.type !== 'null';
    const staticMismatch = (allowed: ReadonlyArray<readonly [StaticType, StaticType]>) => {
      if (!known(left) || !known(right)) {
        for (const side of [left, right])
          if (known(side) && !allowed.some((pair) => pair.includes(side.type)))
            throw this.#invalid(at, `'${op}' cannot take ${article(side.type)}`, { operator: op });
        return;
      }
      if (!allowed.some(([a, b]) => a === left.type && b === right.type))
        throw this.#invalid(
          at,
          `'${op}' cannot combine ${article(left.type)} and ${article(right.type)}`,
          {
            operator: op,
          },
        );
    };
    const spec = operators[op];
    if (spec.takes) staticMismatch(spec.takes);
    const errors: OperatorErrors = {
      mismatch: (a, b) => {
        throw mismatch(a, b);
      },
      fail: (reason) => {
        throw this.#runtime(at, reason);
      },
    };
    return {
      type: spec.returns(left.type, right.type),
      constant,
      evaluate: (env) => spec.apply(l(env), r(env), errors),
    };
  }

  #membership(node: Extract<Node, { type: 'membership' }>): Compiled {
    const element = this.compile(node.element);
    const { negated, at } = node;
    const word = negated ? "'not in'" : "'in'";
    const e = element.evaluate;
    if (node.collection.type === 'range') {
      const low = this.compile(node.collection.low);
      const high = this.compile(node.collection.high);
      this.#expect(element, ['number', 'null'], at, `${word} a range needs a number on its left`);
      this.#expect(low, ['number'], node.collection.at, "a range's bounds must be numbers");
      this.#expect(high, ['number'], node.collection.at, "a range's bounds must be numbers");
      const lo = low.evaluate;
      const hi = high.evaluate;
      const rangeAt = node.collection.at;
      return {
        type: 'boolean',
        constant: element.constant && low.constant && high.constant,
        evaluate: (env) => {
          const value = e(env);
          const a = lo(env);
          const b = hi(env);
          if (typeof a !== 'number' || typeof b !== 'number')
            throw this.#runtime(
              rangeAt,
              `a range's bounds must be numbers, not ${formatValue(a)}..${formatValue(b)}`,
            );
          if (value === null) return negated;
          if (typeof value !== 'number')
            throw this.#runtime(
              at,
              `${word} a range needs a number, not ${article(typeOf(value))}`,
            );
          return (value >= a && value <= b) !== negated;
        },
      };
    }
    const collection = this.compile(node.collection);
    this.#expect(
      collection,
      ['list', 'string', 'null'],
      at,
      `${word} needs a list, a range or a string on its right`,
    );
    if (collection.type === 'string')
      this.#expect(element, ['string', 'null'], at, `${word} a string needs a string on its left`);
    const c = collection.evaluate;
    return {
      type: 'boolean',
      constant: element.constant && collection.constant,
      evaluate: (env) => {
        const value = e(env);
        const within = c(env);
        if (within === null) return negated;
        if (Array.isArray(within))
          return listContains(within as readonly Value[], value) !== negated;
        if (typeof within === 'string') {
          if (value === null) return negated;
          if (typeof value !== 'string')
            throw this.#runtime(
              at,
              `${word} a string needs a string on its left, not ${article(typeOf(value))}`,
            );
          return within.includes(value) !== negated;
        }
        throw this.#runtime(
          at,
          `${word} needs a list, a range or a string on its right, not ${article(typeOf(within))}`,
        );
      },
    };
  }

  #call(node: Extract<Node, { type: 'call' }>): Compiled {
    const { name, args, at } = node;
    if (name === 'exists') {
      const target = args[0];
      if (args.length !== 1 || target?.type !== 'path')
        throw this.#invalid(at, 'exists() takes one fact, e.g. exists(vm.user.owner)');
      const fact = this.compile(target).evaluate;
      return { type: 'boolean', constant: false, evaluate: (env) => fact(env) !== null };
    }
    const spec = functions[name];
    if (!spec)
      throw this.#invalid(
        at,
        `unknown function '${name}' (known: exists, ${functionNames.join(', ')})`,
        {
          function: name,
        },
      );
    if (args.length < spec.min || args.length > spec.max)
      throw this.#invalid(
        at,
        `${name}() takes ${spec.min === spec.max ? spec.min : `${spec.min} to ${spec.max}`} argument${spec.max === 1 ? '' : 's'}, not ${args.length}`,
        { function: name },
      );
    const compiled = args.map((arg) => this.compile(arg));
    const allowedAt = (index: number) => spec.args[Math.min(index, spec.args.length - 1)]!;
    compiled.forEach((arg, index) => {
      const allowed = allowedAt(index);
      if (!allowed.includes('any'))
        this.#expect(
          arg,
          allowed,
          args[index]!.at,
          `argument ${index + 1} of ${name}() must be ${allowed
            .filter((t) => t !== 'null')
            .map(article)
            .join(' or ')}`,
        );
    });
    const evaluators = compiled.map((arg) => arg.evaluate);
    const fail = (reason: string): never => {
      throw this.#runtime(at, `${name}(): ${reason}`);
    };
    return {
      type: spec.returns,
      constant: compiled.every((arg) => arg.constant),
      evaluate: (env) => {
        const values: Value[] = new Array<Value>(evaluators.length);
        for (let index = 0; index < evaluators.length; index++) {
          const value = evaluators[index]!(env);
          const allowed = allowedAt(index);
          if (value !== null && !allowed.includes('any') && !allowed.includes(typeOf(value)))
            fail(
              `argument ${index + 1} must be ${allowed
                .filter((t) => t !== 'null')
                .map(article)
                .join(' or ')}, not ${article(typeOf(value))}`,
            );
          values[index] = value;
        }
        return spec.apply(values, fail);
      },
    };
  }

  /** Refuses at compile time an operand whose type is known and not allowed. */
  #expect(compiled: Compiled, allowed: StaticType[], at: SourcePosition, reason: string): void {
    if (compiled.type === 'any' || allowed.includes(compiled.type)) return;
    if (compiled.type === 'null' && allowed.includes('null')) return;
    throw this.#invalid(at, `${reason}, not ${article(compiled.type)}`);
  }

  #truth(what: string, at: SourcePosition): (value: Value) => boolean {
    return (value) => {
      if (value === true) return true;
      if (value === false || value === null) return false;
      throw this.#runtime(
        at,
        `${what} needs true or false, not ${article(typeOf(value))} (${formatValue(value)})`,
      );
    };
  }

  #invalid(at: SourcePosition, reason: string, extra: Record<string, unknown> = {}) {
    return policyError('ZEN_POLICY_INVALID', this.source, at, reason, extra);
  }

  #runtime(at: SourcePosition, reason: string) {
    return policyError('ZEN_POLICY_EVALUATION', this.source, at, reason);
  }
}
