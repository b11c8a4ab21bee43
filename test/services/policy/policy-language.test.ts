import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import type { Root } from '../../../src/services/policy/language/ast.js';
import {
  compileCondition,
  compileExpression,
  compileScore,
  holds,
  scoreOf,
  type PolicyEnv,
} from '../../../src/services/policy/language/compiler.js';
import { tokenize } from '../../../src/services/policy/language/lexer.js';
import { parse } from '../../../src/services/policy/language/parser.js';

type Facts = Record<string, string | number | boolean | string[] | null>;

function env(objects: Partial<Record<Root, Facts>>): PolicyEnv {
  const out: Record<string, { fact(key: string): Facts[string] | undefined }> = {};
  for (const [root, facts] of Object.entries(objects))
    out[root] = { fact: (key) => (Object.hasOwn(facts, key) ? facts[key] : undefined) };
  return out;
}

const vm = {
  name: 'web-1',
  tags: ['env:prod', 'app:shop', 'tier:web'],
  'cpu.count': 4,
  'memory.bytes': 8 * 1024 ** 3,
  'power.state': 'running',
  'user.owner': 'alice',
  'user.note': 'hello',
  'hypervisor.type': 'qemu',
};
const host = {
  name: 'rack1-h3',
  tags: ['ssd', 'env:prod', 'rack:1'],
  'cpu.cores': 32,
  'memory.totalBytes': 256 * 1024 ** 3,
  'host.state': 'connected',
  'cost.perHour': 0.7,
};
const both = env({ vm, host, cluster: { name: 'c1' }, user: { name: 'alice', role: 'operator' } });

const run = (source: string, context: PolicyEnv = both) =>
  compileExpression(source).evaluate(context);

/** Asserts the coded error and where it points. */
function refuses(
  source: string,
  code: string,
  line: number,
  column: number,
  reason: RegExp,
  context?: PolicyEnv,
) {
  try {
    const compiled = compileExpression(source);
    compiled.evaluate(context ?? both);
  } catch (error) {
    assert.ok(
      isZenithError(error),
      `a coded error for ${JSON.stringify(source)}: ${String(error)}`,
    );
    assert.equal(error.code, code, `${JSON.stringify(source)}: ${error.message}`);
    assert.deepEqual(
      [error.details.line, error.details.column],
      [line, column],
      `${JSON.stringify(source)} points at ${String(error.details.line)}:${String(error.details.column)} (${error.message})`,
    );
    assert.match(error.message, reason);
    assert.match(error.message, new RegExp(`^line ${line}, column ${column}: `));
    assert.equal(typeof error.details.excerpt, 'string');
    return;
  }
  assert.fail(`${JSON.stringify(source)} was accepted`);
}

describe('policy language: reading and evaluating', () => {
  test('facts are read as root.key, with the root kind as a namespace fallback (host.state)', () => {
    assert.equal(run('vm.cpu.count'), 4);
    assert.equal(run('host.cpu.cores'), 32);
    assert.equal(run('host.state'), 'connected');
    assert.equal(run('vm.user.owner'), 'alice');
    assert.equal(run('vm["user.owner"]'), 'alice');
    assert.equal(run('vm.user["owner"]'), 'alice');
    assert.equal(run('user.role'), 'operator');
    assert.equal(run('vm.user.missing'), null);
    assert.equal(run('group.name'), null, 'an object absent from the context reads as null');
  });

  test('numbers carry size units and percentages; strings take escapes', () => {
    assert.equal(run('4GiB'), 4 * 1024 ** 3);
    assert.equal(run('1KiB + 1KB'), 2024);
    assert.equal(run('2TB / 1TiB'), 2e12 / 1024 ** 4);
    assert.equal(run('80%'), 0.8);
    assert.equal(run('1.5e3'), 1500);
    assert.equal(run(String.raw`'it\'s' + "\t" + "\"q\"" + '\\'`), `it's\t"q"\\`);
  });

  test('comparison, boolean logic and precedence', () => {
    assert.equal(run('vm.cpu.count * 2 <= host.cpu.cores / 4'), true);
    assert.equal(run('1 + 2 * 3 == 7 and not 2 - 1 == 0'), true);
    assert.equal(run('(1 + 2) * 3'), 9);
    assert.equal(run('10 % 4'), 2);
    assert.equal(run('-vm.cpu.count'), -4);
    assert.equal(run('"abc" < "abd"'), true);
    assert.equal(run('true or false and false'), true, 'and binds tighter than or');
    assert.equal(run('vm.name != "web-2"'), true);
    assert.equal(run('1 == "1"'), false, 'nothing is coerced');
    assert.equal(run('[1, "a"] == [1, "a"]'), true);
  });

  test('a missing fact is null: arithmetic gives null, orderings are false, logic reads it as false', () => {
    assert.equal(run('vm.user.gpu + 1'), null);
    assert.equal(run('vm.user.gpu > 1'), false);
    assert.equal(run('vm.user.gpu <= 1'), false);
    assert.equal(run('vm.user.gpu == null'), true);
    assert.equal(run('not vm.user.gpu'), true);
    assert.equal(run('vm.user.gpu or true'), true);
    assert.equal(run('1 / 0'), null, 'division by zero gives null');
    assert.equal(run('5 % 0'), null);
  });

  test('membership in lists, ranges and strings; set operations on tags', () => {
    assert.equal(run("'env:prod' in vm.tags"), true);
    assert.equal(run("'env:dev' not in vm.tags"), true);
    assert.equal(run('vm.cpu.count in 2..8'), true);
    assert.equal(run('vm.cpu.count in 5..8'), false);
    assert.equal(run('vm.cpu.count not in 5..8'), true);
    assert.equal(run('vm.memory.bytes in 1GiB..16GiB'), true);
    assert.equal(run('vm.user.gpu in 1..2'), false);
    assert.equal(run('vm.user.gpu not in 1..2'), true);
    assert.equal(run('"web" in vm.name'), true);
    assert.equal(run('host.cpu.cores in [16, 32, 64]'), true);
    assert.equal(run('1 in vm.user.gpu'), false, 'a missing list holds nothing');
    assert.deepEqual(run('vm.tags & host.tags'), ['env:prod']);
    assert.deepEqual(run("vm.tags - ['app:shop']"), ['env:prod', 'tier:web']);
    assert.deepEqual(run("['a'] | ['b', 'a']"), ['a', 'b']);
    assert.deepEqual(
      run('vm.user.teams & vm.tags'),
      [],
      'a missing list is empty in set operations',
    );
    assert.equal(run('len(vm.tags & host.tags) > 0'), true);
  });

  test('existence checks and functions', () => {
    assert.equal(run('exists(vm.user.owner)'), true);
    assert.equal(run('not exists(vm.user.gpu)'), true);
    assert.equal(run('len(vm.tags)'), 3);
    assert.equal(run('len(vm.name)'), 5);
    assert.equal(run('len(vm.user.gpu)'), 0);
    assert.equal(run('lower("AbC") + upper("x")'), 'abcX');
    assert.equal(run('startsWith(host.name, "rack1-") and endsWith(host.name, "h3")'), true);
    assert.equal(run('contains(vm.tags, "tier:web") and contains(vm.name, "eb")'), true);
    assert.equal(run('overlaps(vm.tags, host.tags) and not subset(vm.tags, host.tags)'), true);
    assert.equal(run('subset(["ssd"], host.tags)'), true);
    assert.equal(run('tagValue(vm.tags, "app")'), 'shop');
    assert.equal(run('tagValue(host.tags, "app")'), null);
    assert.equal(run('min(3, vm.cpu.count, 9)'), 3);
    assert.equal(run('max([1, 7], 2, vm.user.gpu)'), 7);
    assert.equal(run('min(vm.user.gpu)'), null);
    assert.equal(run('abs(-2) + round(2.5) + floor(2.9) + ceil(2.1)'), 2 + 3 + 2 + 3);
    assert.equal(run('coalesce(vm.user.gpu, host.cost.perHour, 5)'), 0.7);
    assert.equal(run('abs(vm.user.gpu)'), null);
    assert.equal(run('lower(vm.user.gpu) == null'), true);
    assert.equal(run('startsWith(vm.user.gpu, "x")'), false);
  });

  test('comments, blank lines and several lines', () => {
    const source = `# prod VMs only on prod hosts
'env:prod' in vm.tags   # the VM
  and 'env:prod' in host.tags

  and host.state == 'connected'`;
    assert.equal(run(source), true);
  });

  test('and/or short-circuit: the right side is not evaluated when the left decides', () => {
    assert.equal(run('false and vm.user.note > 1'), false);
    assert.equal(run('true or vm.user.note > 1'), true);
  });

  test('the compiled expression says which objects it reads, and conditions and scores read as verdicts', () => {
    assert.deepEqual([...compileExpression('host.cpu.cores > vm.cpu.count').roots].sort(), [
      'host',
      'vm',
    ]);
    assert.deepEqual([...compileExpression('1 + 1').roots], []);
    const condition = compileCondition("'ssd' in host.tags");
    assert.equal(holds(condition, both), true);
    assert.equal(holds(compileCondition('vm.user.gpu'), both), false, 'null does not hold');
    assert.equal(scoreOf(compileScore('host.cost.perHour * 10'), both), 7);
    assert.equal(scoreOf(compileScore("'ssd' in host.tags"), both), 1);
    assert.equal(scoreOf(compileScore('vm.user.gpu'), both), 0);
    assert.equal(compileExpression('2 * 3').type, 'number', 'constants are folded');
  });

  test('tokens carry line and column', () => {
    const tokens = tokenize('vm.cpu.count\n  >= 4GiB');
    const ge = tokens.find((t) => t.text === '>=')!;
    assert.deepEqual([ge.at.line, ge.at.column], [2, 3]);
    const size = tokens.find((t) => t.kind === 'number')!;
    assert.equal(size.value, 4 * 1024 ** 3);
    assert.equal(parse('a.b').type, 'path');
  });
});

describe('policy language: every refusal names its line and column', () => {
  test('lexer errors', () => {
    refuses('vm.name = "x"', 'ZEN_POLICY_SYNTAX', 1, 9, /unexpected character '='.*'=='/);
    refuses('!vm.x', 'ZEN_POLICY_SYNTAX', 1, 1, /unexpected character '!'.*'not'/);
    refuses('vm.x\n  == $', 'ZEN_POLICY_SYNTAX', 2, 6, /unexpected character '\$'/);
    refuses('vm.cpu.count > 4x', 'ZEN_POLICY_SYNTAX', 1, 16, /is not a number: units are/);
    refuses('4GiBs', 'ZEN_POLICY_SYNTAX', 1, 1, /not a number/);
    refuses('10%3', 'ZEN_POLICY_SYNTAX', 1, 1, /not a number/);
    refuses('vm.name == "a\\qb"', 'ZEN_POLICY_SYNTAX', 1, 14, /unknown escape '\\q'/);
    refuses('vm.name == "abc', 'ZEN_POLICY_SYNTAX', 1, 12, /unterminated string/);
    refuses("vm.name == 'ab\nc'", 'ZEN_POLICY_SYNTAX', 1, 12, /unterminated string/);
    refuses('x'.repeat(20_000), 'ZEN_POLICY_SYNTAX', 1, 1, /at most 16384 characters/);
  });

  test('parser errors', () => {
    refuses('', 'ZEN_POLICY_SYNTAX', 1, 1, /empty/);
    refuses('  # only a comment\n', 'ZEN_POLICY_SYNTAX', 2, 1, /empty/);
    refuses(
      'vm.cpu.count > 2 host.cpu.cores',
      'ZEN_POLICY_SYNTAX',
      1,
      18,
      /after a complete expression/,
    );
    refuses('1 < vm.x < 3', 'ZEN_POLICY_SYNTAX', 1, 10, /do not chain/);
    refuses('1 in vm.tags in vm.tags', 'ZEN_POLICY_SYNTAX', 1, 14, /do not chain/);
    refuses(
      '(vm.x > 1',
      'ZEN_POLICY_SYNTAX',
      1,
      10,
      /expected '\)' to close the '\(' at line 1, column 1 but found the end/,
    );
    refuses('[1, 2', 'ZEN_POLICY_SYNTAX', 1, 6, /expected '\]' to close the list/);
    refuses(
      'len(vm.tags',
      'ZEN_POLICY_SYNTAX',
      1,
      12,
      /expected '\)' to close the arguments of len\(\)/,
    );
    refuses(
      'and vm.x',
      'ZEN_POLICY_SYNTAX',
      1,
      1,
      /expected a value, a fact or '\(' but found 'and'/,
    );
    refuses('vm.x > )', 'ZEN_POLICY_SYNTAX', 1, 8, /expected a value/);
    refuses('vm.x >', 'ZEN_POLICY_SYNTAX', 1, 7, /but found the end of the expression/);
    refuses('vm.', 'ZEN_POLICY_SYNTAX', 1, 4, /expected a fact name after '\.'/);
    refuses(
      'vm.4',
      'ZEN_POLICY_SYNTAX',
      1,
      4,
      /expected a fact name after '\.' but found the number 4/,
    );
    refuses('vm[owner]', 'ZEN_POLICY_SYNTAX', 1, 4, /quoted fact name/);
    refuses('vm[""]', 'ZEN_POLICY_SYNTAX', 1, 4, /cannot be empty/);
    refuses('vm["a" == 1', 'ZEN_POLICY_SYNTAX', 1, 8, /expected '\]' to close the '\['/);
    refuses(`${'('.repeat(70)}1${')'.repeat(70)}`, 'ZEN_POLICY_SYNTAX', 1, 65, /deeper than 64/);
    refuses(`${'not '.repeat(70)}true`, 'ZEN_POLICY_SYNTAX', 1, 1 + 4 * 63, /deeper than 64/);
    refuses(`${'-'.repeat(70)}1`, 'ZEN_POLICY_SYNTAX', 1, 64, /deeper than 64/);
  });

  test('names, types and arity are refused when the policy is compiled', () => {
    refuses(
      'vmm.cpu.count > 2',
      'ZEN_POLICY_INVALID',
      1,
      1,
      /unknown name 'vmm': facts are read from vm, host/,
    );
    refuses('len.x', 'ZEN_POLICY_INVALID', 1, 1, /len is a function/);
    refuses('vm == 1', 'ZEN_POLICY_INVALID', 1, 1, /'vm' alone is not a value/);
    refuses('not 4', 'ZEN_POLICY_INVALID', 1, 1, /'not' needs true or false, not a number/);
    refuses('-"a"', 'ZEN_POLICY_INVALID', 1, 1, /'-' needs a number, not a string/);
    refuses(
      'vm.x > 1 and 5',
      'ZEN_POLICY_INVALID',
      1,
      10,
      /'and' needs true or false on its right, not a number/,
    );
    refuses(
      '"x" or vm.y',
      'ZEN_POLICY_INVALID',
      1,
      5,
      /'or' needs true or false on its left, not a string/,
    );
    refuses('vm.name > 3', 'ZEN_POLICY_INVALID', 1, 9, /'>' cannot combine a string and a number/);
    refuses('vm.x < true', 'ZEN_POLICY_INVALID', 1, 6, /'<' cannot take a boolean/);
    refuses('1 + "a"', 'ZEN_POLICY_INVALID', 1, 3, /'\+' cannot combine a number and a string/);
    refuses('vm.tags - 1', 'ZEN_POLICY_INVALID', 1, 9, /'-' cannot combine a list and a number/);
    refuses('vm.name * 2', 'ZEN_POLICY_INVALID', 1, 9, /'\*' cannot combine a string and a number/);
    refuses('vm.name * vm.x', 'ZEN_POLICY_INVALID', 1, 9, /'\*' cannot take a string/);
    refuses('vm.tags & 3', 'ZEN_POLICY_INVALID', 1, 9, /'&' cannot combine a list and a number/);
    refuses(
      'vm.x in "a".."b"',
      'ZEN_POLICY_INVALID',
      1,
      12,
      /range's bounds must be numbers, not a string/,
    );
    refuses(
      'vm.name in 1..2',
      'ZEN_POLICY_INVALID',
      1,
      9,
      /'in' a range needs a number on its left, not a string/,
    );
    refuses(
      'vm.x in 5',
      'ZEN_POLICY_INVALID',
      1,
      6,
      /'in' needs a list, a range or a string on its right, not a number/,
    );
    refuses(
      '1 not in "abc"',
      'ZEN_POLICY_INVALID',
      1,
      3,
      /'not in' a string needs a string on its left, not a number/,
    );
    refuses('exists(1)', 'ZEN_POLICY_INVALID', 1, 1, /exists\(\) takes one fact/);
    refuses('exists(vm.a, vm.b)', 'ZEN_POLICY_INVALID', 1, 1, /exists\(\) takes one fact/);
    refuses('sqrt(4)', 'ZEN_POLICY_INVALID', 1, 1, /unknown function 'sqrt'/);
    refuses('len()', 'ZEN_POLICY_INVALID', 1, 1, /len\(\) takes 1 argument, not 0/);
    refuses('startsWith("a")', 'ZEN_POLICY_INVALID', 1, 1, /takes 2 arguments, not 1/);
    refuses(
      'vm.x and\n  lower(3) == "a"',
      'ZEN_POLICY_INVALID',
      2,
      9,
      /argument 1 of lower\(\) must be a string, not a number/,
    );
    refuses(
      'coalesce(null, "a") * 2',
      'ZEN_POLICY_INVALID',
      1,
      21,
      /'\*' cannot combine a string and a number/,
    );
    refuses(
      'vm.x or len(coalesce(5)) > 1',
      'ZEN_POLICY_INVALID',
      1,
      13,
      /argument 1 of len\(\) must be a list or a string, not a number/,
    );
    // A constant that fails when folded is refused when the policy is saved, not when it runs.
    refuses(
      'vm.x or contains("abc", 1)',
      'ZEN_POLICY_INVALID',
      1,
      9,
      /contains\(string, x\) needs x to be a string/,
    );
  });

  test('a condition must be true or false; a preference a number or a verdict', () => {
    for (const [compile, source, reason] of [
      [
        compileCondition,
        'vm.cpu.count + 1',
        /a condition must be true or false, but this expression gives a number/,
      ],
      [
        compileScore,
        'vm.name',
        /a preference must give a number or true\/false, but this expression gives a string/,
      ],
    ] as const) {
      assert.throws(
        () => compile(source),
        (error: unknown) =>
          isZenithError(error) && error.code === 'ZEN_POLICY_INVALID' && reason.test(error.message),
      );
    }
    assert.throws(
      () =>
        compileCondition('host.cpu.cores > 2', {
          allowedRoots: ['vm', 'group', 'user'],
          purpose: "the 'when' condition",
        }),
      (error: unknown) =>
        isZenithError(error) &&
        error.code === 'ZEN_POLICY_INVALID' &&
        /the 'when' condition may read only vm, group, user, not host.cpu.cores/.test(
          error.message,
        ) &&
        error.details.column === 1,
    );
  });

  test('type mismatches that only facts reveal fail at run time with the operator position', () => {
    refuses(
      'vm.cpu.count + "x"',
      'ZEN_POLICY_EVALUATION',
      1,
      14,
      /'\+' cannot combine a number and a string/,
    );
    refuses(
      'vm.cpu.count > "x"',
      'ZEN_POLICY_EVALUATION',
      1,
      14,
      /'>' cannot combine a number and a string/,
    );
    refuses(
      'vm.power.state - vm.x',
      'ZEN_POLICY_EVALUATION',
      1,
      16,
      /'-' cannot combine a string and a number/,
      env({ vm: { 'power.state': 'on', x: 1 } }),
    );
    refuses(
      'vm.a * 2',
      'ZEN_POLICY_EVALUATION',
      1,
      6,
      /'\*' cannot combine a string and a number/,
      env({ vm: { a: 'x' } }),
    );
    refuses(
      'vm.user.note and true',
      'ZEN_POLICY_EVALUATION',
      1,
      14,
      /'and' needs true or false, not a string \("hello"\)/,
    );
    refuses(
      'not vm.cpu.count',
      'ZEN_POLICY_EVALUATION',
      1,
      1,
      /'not' needs true or false, not a number/,
    );
    refuses('-vm.user.note', 'ZEN_POLICY_EVALUATION', 1, 1, /'-' needs a number, not a string/);
    refuses(
      'vm.user.note in 1..2',
      'ZEN_POLICY_EVALUATION',
      1,
      14,
      /'in' a range needs a number, not a string/,
    );
    refuses(
      '1 in 0..vm.user.note',
      'ZEN_POLICY_EVALUATION',
      1,
      7,
      /range's bounds must be numbers/,
    );
    refuses(
      '1 in vm.cpu.count',
      'ZEN_POLICY_EVALUATION',
      1,
      3,
      /'in' needs a list, a range or a string on its right, not a number/,
    );
    refuses(
      'vm.cpu.count in vm.name',
      'ZEN_POLICY_EVALUATION',
      1,
      14,
      /'in' a string needs a string on its left, not a number/,
    );
    refuses(
      'vm.tags & vm.cpu.count',
      'ZEN_POLICY_EVALUATION',
      1,
      9,
      /'&' needs lists; the right side is a number/,
    );
    refuses(
      'lower(vm.cpu.count)',
      'ZEN_POLICY_EVALUATION',
      1,
      1,
      /lower\(\): argument 1 must be a string, not a number/,
    );
    refuses(
      'contains(vm.name, vm.cpu.count)',
      'ZEN_POLICY_EVALUATION',
      1,
      1,
      /contains\(string, x\) needs x to be a string/,
    );
  });
});
