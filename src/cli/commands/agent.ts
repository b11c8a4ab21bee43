import type { Command } from 'commander';
import { resolve } from 'node:path';
import { systemClock } from '../../core/clock.js';
import { ZenithError } from '../../api/errors.js';
import { reportUnhandledRejectionsTo } from '../../core/unhandled-rejections.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printKeyValues, printTable } from '../output.js';

interface Globals {
  json?: boolean;
  server?: string;
}

interface AgentView {
  id: string;
  hostname: string;
  state: string;
  lastSeenAt: number | null;
  enrolledAt: number;
  facts: Record<string, unknown>;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description(
      'Run the host agent (with --server URL): enroll with a one-time token, then keep this host connected',
    )
    .option(
      '--token <token>',
      'one-time enrollment token (first start only; or ZENITH_ENROLLMENT_TOKEN)',
      process.env.ZENITH_ENROLLMENT_TOKEN,
    )
    .option(
      '--state-dir <dir>',
      'where the agent keeps its credentials and VM definitions',
      process.env.ZENITH_AGENT_DIR ?? '/var/lib/zenith-agent',
    )
    .option(
      '--storage-root <dir>',
      'a directory VM disks, images and kernels may live in (repeatable)',
      collect,
    )
    .option('--accelerator <kind>', 'auto, kvm or tcg', 'auto')
    .option(
      '--migration-address <ip>',
      'the address other hosts send live migrations to',
      '127.0.0.1',
    )
    .option('--host-name <name>', 'the name this host reports (default: the system host name)')
    .action(
      async (
        options: {
          token?: string;
          stateDir: string;
          storageRoot?: string[];
          accelerator: string;
          hostName?: string;
          migrationAddress: string;
        },
        command: Command,
      ) => {
        // --server is the program's global option: `zenith agent --server URL …` or `zenith --server URL agent …`.
        const server =
          command.optsWithGlobals<{ server?: string }>().server ?? process.env.ZENITH_SERVER;
        if (!server)
          throw new ZenithError(
            'ZEN_CONFIG_INVALID',
            'zenith agent needs --server URL (the control plane)',
          );
        if (!['auto', 'kvm', 'tcg'].includes(options.accelerator))
          throw new ZenithError('ZEN_CONFIG_INVALID', '--accelerator is auto, kvm or tcg');
        const stateDir = resolve(options.stateDir);
        // Loaded here, not at the top: every other command starts without the agent's modules.
        const { HostAgent } = await import('../../agent/host-agent.js');
        const { createLogger } = await import('../../core/logger.js');
        const logger = createLogger();
        reportUnhandledRejectionsTo(logger);
        const agent = new HostAgent({
          server: server.replace(/\/+$/, ''),
          stateDir,
          enrollmentToken: options.token,
          storageRoots: (options.storageRoot ?? [resolve(stateDir, 'images')]).map((root) =>
            resolve(root),
          ),
          accelerator: options.accelerator as 'auto' | 'kvm' | 'tcg',
          hostName: options.hostName,
          migrationAddress: options.migrationAddress,
          clock: systemClock,
          logger,
        });
        const stop = () => {
          agent.stop().then(
            () => process.exit(0),
            (error: unknown) => {
              logger.error({ err: error }, 'the agent did not stop cleanly');
              process.exit(1);
            },
          );
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        await agent.run();
      },
    );
}

/** `zenith agents …`: enrolling, listing and revoking host agents (administrators). */
export function registerAgents(program: Command): void {
  const agents = program.command('agents').description('Host agents: enroll, list, revoke');
  agents
    .command('list', { isDefault: true })
    .description('Enrolled agents with their state (connected, disconnected, revoked)')
    .action(async (_o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const page = await ApiClient.fromConfig(globals).get<{ items: AgentView[] }>('/agents');
      if (globals.json) return printJson(page);
      printTable(
        ['ID', 'HOST', 'STATE', 'LAST SEEN', 'VMS'],
        page.items.map((a) => [
          a.id,
          a.hostname,
          a.state,
          a.lastSeenAt ? formatTime(a.lastSeenAt) : '-',
          typeof a.facts['agent.vms'] === 'number' ? String(a.facts['agent.vms']) : '-',
        ]),
      );
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
