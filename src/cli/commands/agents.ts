/** `zenith agents`: enrolling, listing and revoking host agents (administrators). */
import type { Command } from 'commander';
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printKeyValues } from '../output.js';
import { addListCommand, type Globals } from './globals.js';

interface AgentView {
  id: string;
  hostname: string;
  state: string;
  lastSeenAt: number | null;
  enrolledAt: number;
  facts: Record<string, unknown>;
}

export function registerAgents(program: Command): void {
  const agents = program.command('agents').description('Host agents: enroll, list, revoke');
  addListCommand<{ items: AgentView[] }>(agents, {
    description: 'Enrolled agents with their state (connected, disconnected, revoked)',
    path: '/agents',
    headers: ['ID', 'HOST', 'STATE', 'LAST SEEN', 'VMS'],
    row: (a) => [
      a.id,
      a.hostname,
      a.state,
      a.lastSeenAt ? formatTime(a.lastSeenAt) : '-',
      typeof a.facts['agent.vms'] === 'number' ? String(a.facts['agent.vms']) : '-',
    ],
  });
  agents
    .command('enroll')
    .description(
      'Create a one-time enrollment token (shown once) and print the command that starts an agent with it',
    )
    .option('--ttl <minutes>', 'how long the token stays valid', '60')
    .action(async (options: { ttl: string }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const ttlMinutes = Number(options.ttl);
      if (!Number.isInteger(ttlMinutes) || ttlMinutes < 1)
        throw new ZenithError('ZEN_BAD_REQUEST', '--ttl is a whole number of minutes, at least 1');
      const client = ApiClient.fromConfig(globals);
      const issued = await client.post<{ id: string; token: string; expiresAt: number }>(
        '/agents/enrollment-tokens',
        { ttlMinutes },
      );
      if (globals.json) return printJson(issued);
      printKeyValues([
        ['token', issued.token],
        ['expires', formatTime(issued.expiresAt)],
        ['on the host', `zenith agent --server ${client.server} --token '${issued.token}'`],
      ]);
    });
  agents
    .command('revoke <id>')
    .description('Cut an agent off at once: its credentials stop working')
    .action(async (id: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const agent = await ApiClient.fromConfig(globals).request<AgentView>(
        'DELETE',
        `/agents/${encodeURIComponent(id)}`,
      );
      if (globals.json) return printJson(agent);
      console.log(`${agent.hostname} (${agent.id}) is ${agent.state}`);
    });
}
