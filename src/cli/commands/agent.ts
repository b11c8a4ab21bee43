/** `zenith agent`: runs the host agent on this host. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { systemClock } from '../../core/clock.js';
import { ZenithError } from '../../api/errors.js';
import { reportUnhandledRejectionsTo } from '../../core/unhandled-rejections.js';
import { collect } from './globals.js';

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
          // The fencing sentinel runs through this same entry (the node flags and script it was run with).
          sentinelCommand: [
            process.execPath,
            ...process.execArgv,
            ...(process.argv[1] ? [process.argv[1]] : []),
            'agent-sentinel',
          ],
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

/**
 * `zenith agent-sentinel --state-dir DIR`, hidden: the host's fencing sentinel, started and fed by
 * the agent of that state directory (src/agent/ha-sentinel.ts). Not for people to run.
 */
export function registerAgentSentinel(program: Command): void {
  program
    .command('agent-sentinel', { hidden: true })
    .description("The agent's fencing sentinel (started by the agent)")
    .requiredOption('--state-dir <dir>', "the agent's state directory")
    .action(async (options: { stateDir: string }) => {
      const { runSentinel } = await import('../../agent/ha-sentinel.js');
      const { createLogger } = await import('../../core/logger.js');
      const logger = createLogger();
      reportUnhandledRejectionsTo(logger);
      await runSentinel({ stateDir: resolve(options.stateDir), logger });
    });
}
