/** `zenith events`: recent events, or the live stream. */
import type { Command } from 'commander';
import type { listEvents, ZenithEvent } from '../../api/events.js';
import type { AnswerOf } from '../../api/operation.js';
import { ApiClient } from '../client.js';
import { formatTime } from '../output.js';
import type { Globals } from './globals.js';

export function registerEvents(program: Command): void {
  program
    .command('events')
    .description('Recent events; --follow streams them live')
    .option('--follow', 'keep streaming new events')
    .option('--type <prefix>', 'only events whose type starts with this, e.g. task. or inventory.')
    .option('--since <seq>', 'events after this sequence number')
    .option('--limit <n>', 'how many recent events without --follow', '50')
    .action(
      async (
        options: { follow?: boolean; type?: string; since?: string; limit: string },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const client = ApiClient.fromConfig(globals);
        const show = (event: ZenithEvent) => {
          if (globals.json) process.stdout.write(`${JSON.stringify(event)}\n`);
          else
            process.stdout.write(
              `${String(event.seq).padStart(8)}  ${formatTime(event.ts)}  ${event.type.padEnd(22)} ${event.objectId ?? '-'}  ${JSON.stringify(event.data)}\n`,
            );
        };
        const filter = new URLSearchParams({
          ...(options.type ? { type: options.type } : {}),
          ...(options.since ? { since: options.since } : {}),
        });
        if (!options.follow) {
          filter.set('limit', options.limit);
          const page = await client.get<AnswerOf<typeof listEvents>>(
            `/events?${filter.toString()}`,
          );
          page.items.forEach(show);
          return;
        }
        for await (const event of client.stream(`/events/stream?${filter.toString()}`)) show(event);
      },
    );
}
