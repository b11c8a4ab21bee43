/** zenith place: where a VM would go, and why. */
import type { Command } from 'commander';
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';
import { printJson } from '../output.js';
import { parseSize } from './parse-size.js';
import type { PlacementDecision } from '../../api/placement.js';
import { printDecision } from './policy.js';
import { wholeNumber } from './parse-number.js';
import { collect, type Globals } from './globals.js';

export function registerPlace(program: Command): void {
  program
    .command('place [vm]')
    .description(
      'Where placement would put a VM: an existing one (where it could move) or a new one (--cpus, --memory); --explain lists every rejected host and why',
    )
    .option('--cpus <n>', 'a new VM: virtual CPUs')
    .option('--memory <size>', 'a new VM: memory, e.g. 4GiB')
    .option('--disk <size>', 'a new VM: disk size')
    .option('--name <name>', 'a new VM: its name (policies may read it)')
    .option('--type <type>', 'a new VM: the hypervisor type it needs')
    .option('--tag <tag>', 'a new VM: a tag it will carry, repeatable', collect)
    .option('--fact <user.key=value>', 'a new VM: a user fact it will carry, repeatable', collect)
    .option('--explain', 'show the best candidates and every rejected host with its reason')
    .option('--top <n>', 'how many candidates to show', '10')
    .action(
      async (
        vm: string | undefined,
        options: {
          cpus?: string;
          memory?: string;
          disk?: string;
          name?: string;
          type?: string;
          tag?: string[];
          fact?: string[];
          explain?: boolean;
          top: string;
        },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        let target: unknown = vm;
        if (!vm) {
          if (!options.cpus || !options.memory)
            throw new ZenithError(
              'ZEN_BAD_REQUEST',
              'name an existing VM, or describe a new one with --cpus and --memory',
            );
          const facts: Record<string, unknown> = {};
          for (const pair of options.fact ?? []) {
            const eq = pair.indexOf('=');
            if (eq <= 0)
              throw new ZenithError(
                'ZEN_BAD_REQUEST',
                `--fact takes user.KEY=VALUE, not '${pair}'`,
              );
            const value = pair.slice(eq + 1);
            facts[pair.slice(0, eq)] =
              value !== '' && Number.isFinite(Number(value)) ? Number(value) : value;
          }
          target = {
            cpus: wholeNumber(options.cpus, '--cpus'),
            memoryBytes: parseSize(options.memory),
            ...(options.disk ? { diskBytes: parseSize(options.disk) } : {}),
            ...(options.name ? { name: options.name } : {}),
            ...(options.type ? { type: options.type } : {}),
            ...(options.tag ? { tags: options.tag } : {}),
            ...(Object.keys(facts).length > 0 ? { facts } : {}),
          };
        }
        const decision = await ApiClient.fromConfig(globals).post<PlacementDecision>(
          '/placement/preview',
          {
            vm: target,
            topCandidates: wholeNumber(options.top, '--top'),
          },
        );
        if (globals.json) return printJson(decision);
        printDecision(decision, options.explain === true);
        if (!decision.chosen) process.exitCode = 1;
      },
    );
}
