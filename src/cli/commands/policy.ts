/** zenith policy …: write, test and inspect placement policies. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ZenithError } from '../../api/errors.js';
import type { PlacementDecision } from '../../api/placement.js';
import type { ExpressionTestResult, PolicyTestResult, PolicyView } from '../../api/policies.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printKeyValues, printTable } from '../output.js';
import { wholeNumber } from './parse-number.js';
import { addListCommand, addShowCommand, collect, type Globals } from './globals.js';

interface PolicyFlags {
  file?: string;
  name?: string;
  description?: string;
  scope?: string;
  when?: string;
  constraint?: string[];
  prefer?: string[];
  set?: string[];
  disabled?: boolean;
}

function readJson(path: string): Record<string, unknown> {
  const text = path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new ZenithError('ZEN_BAD_REQUEST', `${path} is not JSON: ${(error as Error).message}`);
  }
}

function namedPair(flag: string, text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0)
    throw new ZenithError('ZEN_BAD_REQUEST', `${flag} takes NAME=EXPRESSION, not '${text}'`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

function settingValue(value: string): unknown {
  if (value !== '' && Number.isFinite(Number(value))) return Number(value);
  return value;
}

/** A policy from a JSON file, or from flags for the simple cases. */
export function policyFromFlags(flags: PolicyFlags): Record<string, unknown> {
  if (flags.file) return readJson(flags.file);
  if (!flags.name) throw new ZenithError('ZEN_BAD_REQUEST', 'give --name (or a file with -f)');
  const [kind, id] = (flags.scope ?? 'global').split(/:(.*)/s, 2) as [string, string | undefined];
  const settings: Record<string, unknown> = {};
  for (const pair of flags.set ?? []) {
    const [key, value] = namedPair('--set', pair);
    if (key.startsWith('migration.')) {
      const migration = (settings.migration ?? {}) as Record<string, unknown>;
      migration[key.slice('migration.'.length)] = settingValue(value);
      settings.migration = migration;
    } else settings[key] = settingValue(value);
  }
  return {
    name: flags.name,
    ...(flags.description ? { description: flags.description } : {}),
    ...(flags.disabled ? { enabled: false } : {}),
    scope: id ? { kind, id } : { kind },
    ...(flags.when ? { when: flags.when } : {}),
    constraints: (flags.constraint ?? []).map((text) => {
      const [name, expression] = namedPair('--constraint', text);
      return { name, expression };
    }),
    preferences: (flags.prefer ?? []).map((text) => {
      const [name, rest] = namedPair('--prefer', text);
      const at = rest.lastIndexOf('@');
      const weight = at > 0 ? Number(rest.slice(at + 1)) : NaN;
      return Number.isFinite(weight)
        ? { name, expression: rest.slice(0, at), weight }
        : { name, expression: rest, weight: 1 };
    }),
    ...(Object.keys(settings).length > 0 ? { settings } : {}),
  };
}

function addPolicyFlags(command: Command): Command {
  return command
    .option('-f, --file <path>', 'the policy as JSON (- for standard input)')
    .option('--name <name>', 'the policy name')
    .option('--description <text>', 'what it is for')
    .option(
      '--scope <scope>',
      'global (default), or datacenter:X, cluster:X, resourceGroup:X, vm:X',
    )
    .option('--when <expression>', 'which VMs it applies to (reads vm.*, group.*, user.*)')
    .option('--constraint <name=expression>', 'a constraint that must hold, repeatable', collect)
    .option(
      '--prefer <name=expression[@weight]>',
      'a preference that ranks hosts, repeatable (weight 1 by default)',
      collect,
    )
    .option(
      '--set <key=value>',
      'a setting: cpuOvercommit, memoryOvercommit, strategy, strategyWeight, costWeight, migration.maxPerHost, …',
      collect,
    )
    .option('--disabled', 'save it switched off');
}

function showPolicy(policy: PolicyView): void {
  printKeyValues([
    ['name', policy.name],
    ['id', policy.id],
    [
      'scope',
      policy.scope.id ? `${policy.scope.kind} ${policy.scope.name ?? policy.scope.id}` : 'global',
    ],
    ['enabled', policy.enabled],
    ['description', policy.description],
    ['when', policy.when ?? '(every VM)'],
    ['updated', formatTime(policy.updatedAt)],
    ['settings', Object.keys(policy.settings).length > 0 ? policy.settings : '-'],
  ]);
  if (policy.constraints.length > 0) {
    process.stdout.write('\nconstraints:\n');
    for (const c of policy.constraints) process.stdout.write(`  ${c.name}: ${c.expression}\n`);
  }
  if (policy.preferences.length > 0) {
    process.stdout.write('\npreferences:\n');
    for (const p of policy.preferences)
      process.stdout.write(`  ${p.name} (weight ${p.weight}): ${p.expression}\n`);
  }
  if (policy.rules.length > 0) {
    process.stdout.write('\nrules:\n');
    for (const r of policy.rules) process.stdout.write(`  ${JSON.stringify(r)}\n`);
  }
}

function printPolicyTest(answer: PolicyTestResult): void {
  const { policy } = answer;
  process.stdout.write(
    `policy ${policy.name} (${policy.scope.id ? `${policy.scope.kind} ${policy.scope.id}` : 'global'}) applies to ${answer.appliesTo.vms} VMs now\n`,
  );
  for (const c of answer.constraints) {
    process.stdout.write(
      `constraint ${c.name}: holds for ${c.holds}, violated by ${c.violated}, failed on ${c.failed}\n`,
    );
    for (const v of c.violations)
      process.stdout.write(`  violated by ${v.vmName} on ${v.hostName ?? '-'}\n`);
    for (const f of c.failures)
      process.stdout.write(`  failed on ${f.vmName} (${f.hostName ?? '-'}): ${f.message}\n`);
  }
  for (const r of answer.rules) {
    process.stdout.write(
      `rule ${r.name} (${r.kind}, ${r.hard ? 'hard' : 'soft'}): ${r.members} VMs in ${r.groups} group(s), ${r.violations.length} broken now\n`,
    );
    for (const v of r.violations) process.stdout.write(`  ${v.vmName}: ${v.detail}\n`);
  }
  for (const p of answer.preferences)
    process.stdout.write(
      `preference ${p.name} (weight ${p.weight}): from ${p.min ?? '-'} to ${p.max ?? '-'}, mean ${p.mean === null ? '-' : p.mean.toFixed(3)}${p.failed ? `, failed on ${p.failed}` : ''}\n`,
    );
  if (answer.placement) {
    process.stdout.write('\nwith this policy in force:\n');
    printDecision(answer.placement, true);
  }
}

function printExpression(answer: ExpressionTestResult): void {
  if ('value' in answer) {
    process.stdout.write(`${JSON.stringify(answer.value)}\n`);
    return;
  }
  process.stdout.write(`evaluated on ${answer.evaluated ?? 0} ${answer.over ?? 'objects'}:\n`);
  for (const c of answer.counts ?? []) process.stdout.write(`  ${c.value}: ${c.count}\n`);
  if (answer.matches?.length) process.stdout.write(`true for: ${answer.matches.join(', ')}\n`);
  for (const f of answer.failures ?? [])
    process.stdout.write(`  failed on ${f.vmName || f.hostName || '-'}: ${f.message}\n`);
}

export function printDecision(decision: PlacementDecision, explain: boolean): void {
  process.stdout.write(
    decision.chosen
      ? `${decision.vm.name} → ${decision.chosen.hostName} (${decision.chosen.hostId}), score ${decision.chosen.score.toFixed(3)}; ${decision.feasibleHosts} of ${decision.hostsConsidered} hosts could take it\n`
      : `${decision.vm.name}: no host can take it (${decision.hostsConsidered} considered)\n`,
  );
  if (!explain) return;
  if (decision.candidates.length > 0) {
    process.stdout.write('\nbest candidates:\n');
    printTable(
      ['HOST', 'SCORE', 'LOAD AFTER', 'WHY'],
      decision.candidates.map((c) => [
        c.hostName,
        c.score.toFixed(3),
        `${Math.round(c.loadAfter * 100)}%`,
        (c.breakdown ?? [])
          .filter((part) => part.points !== 0)
          .map(
            (part) =>
              `${part.kind} ${part.name} ${part.points >= 0 ? '+' : ''}${part.points.toFixed(2)}`,
          )
          .join(', '),
      ]),
    );
  }
  if (decision.rejected.length > 0) {
    process.stdout.write(`\nrejected (${decision.rejected.length}):\n`);
    printTable(
      ['HOST', 'REJECTED BY', 'WHY'],
      decision.rejected.map((r) => [r.hostName, r.reason.kind, r.reason.message]),
    );
  }
}

const policyPath = (name: string) => `/policies/${encodeURIComponent(name)}`;

export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description('Placement policies: write, test, inspect');
  addListCommand<{ items: PolicyView[] }>(policy, {
    description: 'Every policy, general scopes first',
    path: '/policies',
    headers: [
      'NAME',
      'SCOPE',
      'ENABLED',
      'WHEN',
      'CONSTRAINTS',
      'PREFERENCES',
      'RULES',
      'SETTINGS',
    ],
    row: (p) => [
      p.name,
      p.scope.id ? `${p.scope.kind} ${p.scope.name ?? p.scope.id}` : 'global',
      p.enabled,
      p.when,
      p.constraints.length,
      p.preferences.length,
      p.rules.length,
      Object.keys(p.settings).join(' ') || null,
    ],
  });
  addShowCommand<PolicyView>(policy, {
    usage: 'show <policy>',
    description: 'One policy by name or id',
    path: policyPath,
    print: showPolicy,
  });
  addPolicyFlags(
    policy
      .command('create')
      .description(
        'Save a policy (test it first with zenith policy test), e.g. --name prod --when "\'env:prod\' in vm.tags" --constraint ssd="\'ssd\' in host.tags"',
      ),
  ).action(async (flags: PolicyFlags, command: Command) => {
    const globals = command.optsWithGlobals<Globals>();
    const created = await ApiClient.fromConfig(globals).post<PolicyView>(
      '/policies',
      policyFromFlags(flags),
    );
    if (globals.json) return printJson(created);
    process.stderr.write(`created policy ${created.name} (${created.id})\n`);
  });
  addPolicyFlags(
    policy.command('replace <policy>').description('Replace a policy with a new version'),
  ).action(async (name: string, flags: PolicyFlags, command: Command) => {
    const globals = command.optsWithGlobals<Globals>();
    const replaced = await ApiClient.fromConfig(globals).request<PolicyView>(
      'PUT',
      policyPath(name),
      policyFromFlags(flags),
    );
    if (globals.json) return printJson(replaced);
    process.stderr.write(`replaced policy ${replaced.name}\n`);
  });
  policy
    .command('delete <policy>')
    .description('Delete a policy')
    .action(async (name: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const gone = await ApiClient.fromConfig(globals).request<PolicyView>(
        'DELETE',
        policyPath(name),
      );
      process.stderr.write(`deleted policy ${gone.name}\n`);
    });
  addPolicyFlags(
    policy
      .command('test')
      .description(
        'Try a policy (or one --expr) against the live inventory without saving it: who it applies to, who breaks it now, and with --vm where that VM would go',
      ),
  )
    .option('--expr <expression>', 'try one expression instead of a policy')
    .option(
      '--vm <vm>',
      'with a policy: show where this VM would be placed; with --expr: evaluate on it',
    )
    .option('--host <host>', 'with --expr: evaluate on this host')
    .option('--limit <n>', 'how many examples to list', '20')
    .action(
      async (
        flags: PolicyFlags & { expr?: string; vm?: string; host?: string; limit: string },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const body: Record<string, unknown> = { limit: wholeNumber(flags.limit, '--limit') };
        if (flags.expr !== undefined) body.expression = flags.expr;
        else body.policy = policyFromFlags(flags);
        if (flags.vm) body.vm = flags.vm;
        if (flags.host) body.host = flags.host;
        const answer = await ApiClient.fromConfig(globals).post<
          PolicyTestResult | ExpressionTestResult
        >('/policies/test', body);
        if (globals.json) return printJson(answer);
        if (flags.expr !== undefined) printExpression(answer as ExpressionTestResult);
        else printPolicyTest(answer as PolicyTestResult);
      },
    );
  policy
    .command('effective <vm>')
    .description(
      'The policies in force for a VM (on its host, or --host) and the settings they add up to',
    )
    .option('--host <host>', 'on this host instead of its own')
    .action(async (vm: string, options: { host?: string }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const query = new URLSearchParams({ vm, ...(options.host ? { host: options.host } : {}) });
      printJson(await ApiClient.fromConfig(globals).get(`/policies/effective?${query.toString()}`));
    });
}
