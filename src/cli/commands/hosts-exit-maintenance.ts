/** `zenith hosts exit-maintenance`: a host in maintenance back in service. */
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { printJson } from '../output.js';
import type { Globals } from './globals.js';

export function registerExitMaintenance(hosts: Command): void {
  hosts
    .command('exit-maintenance <host>')
    .description('Take a host out of maintenance: placement may use it again')
    .action(async (host: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const answer = await ApiClient.fromConfig(globals).post<{ hostId: string; mode: string }>(
        `/hosts/${encodeURIComponent(host)}/exit-maintenance`,
      );
      if (globals.json) return printJson(answer);
      process.stderr.write(`${host} is back in service\n`);
    });
}
