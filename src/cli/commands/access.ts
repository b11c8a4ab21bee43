/** `zenith access`: why an identity may or may not do something (explain), and reports (access-report.ts). */
import type { Command } from 'commander';
import { registerAccessReport } from './access-report.js';
import { printJson, printKeyValues } from '../output.js';
import { clientOf } from './globals.js';
import type { BindingView } from '../../api/access.js';

interface Decision {
  allowed: boolean;
  permission: string;
  objectId: string | null;
  binding: BindingView | null;
  via: string[];
  reason: string;
  conditions: Array<{ bindingId: string; condition: string; held: boolean; error?: string }>;
}

export function registerAccess(program: Command): void {
  const access = program.command('access').description('Who may do what where');
  access
    .command('explain <identity> <permission> [object]')
    .description(
      'Would IDENTITY be allowed PERMISSION on OBJECT (everywhere when absent)? Names the binding that allows, or why nothing does',
    )
    .action(
      async (
        identity: string,
        permission: string,
        object: string | undefined,
        _o,
        command: Command,
      ) => {
        const { api, json } = clientOf(command);
        const query = new URLSearchParams({ identity, permission, ...(object ? { object } : {}) });
        const decision = await api.get<Decision>(`/access/explain?${query.toString()}`);
        if (json) return printJson(decision);
        printKeyValues([
          ['decision', decision.allowed ? 'ALLOWED' : 'DENIED'],
          ['reason', decision.reason],
          ...(decision.binding
            ? ([
                ['binding', decision.binding.id],
                ['role', decision.binding.role],
                ['scope', decision.binding.scopeId ?? 'everything'],
              ] as Array<[string, unknown]>)
            : []),
          ...(decision.via.length > 0
            ? ([['through groups', decision.via.join(' → ')]] as Array<[string, unknown]>)
            : []),
          ...decision.conditions.map((c): [string, unknown] => [
            `condition of ${c.bindingId}`,
            `${c.condition} → ${c.held ? 'held' : 'did not hold'}${c.error ? ` (${c.error})` : ''}`,
          ]),
        ]);
        if (!decision.allowed) process.exitCode = 1;
      },
    );
  registerAccessReport(access);
}
