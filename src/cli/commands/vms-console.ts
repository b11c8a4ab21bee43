/** `zenith vms console VM`: the VM's serial console in this terminal, through the control plane. */
import type { Command } from 'commander';
import WebSocket from 'ws';
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';

const ctrlRightBracket = 0x1d;

export function registerConsole(vms: Command): void {
  vms
    .command('console <vm>')
    .description('Attach to the serial console of a running VM (Ctrl-] to leave)')
    .action(async (vm: string, _options: unknown, command: Command) => {
      const client = ApiClient.fromConfig(command.optsWithGlobals<{ server?: string }>());
      const issued = await client.post<{ path: string }>(
        `/vms/${encodeURIComponent(vm)}/console-tickets`,
        { kind: 'serial' },
      );
      const url = `${client.server.replace(/^http/, 'ws')}${issued.path}`;
      await new Promise<void>((resolve, reject) => {
        const socket = new WebSocket(url);
        const stdin = process.stdin;
        const restore = () => {
          if (stdin.isTTY) stdin.setRawMode(false);
          stdin.pause();
        };
        socket.on('open', () => {
          process.stderr.write(`Connected to the serial console of ${vm}; Ctrl-] leaves.\n`);
          if (stdin.isTTY) stdin.setRawMode(true);
          stdin.resume();
          stdin.on('data', (chunk: Buffer) => {
            if (chunk.includes(ctrlRightBracket)) socket.close(1000);
            else socket.send(chunk);
          });
        });
        socket.on('message', (data: Buffer) => process.stdout.write(data));
        socket.on('close', (code, reason) => {
          restore();
          if (code >= 4000)
            reject(
              new ZenithError(
                code === 4401 ? 'ZEN_UNAUTHENTICATED' : 'ZEN_INVALID_STATE',
                reason.toString() || `console closed (${code})`,
              ),
            );
          else resolve();
        });
        socket.on('error', (error) => {
          restore();
          reject(
            new ZenithError('ZEN_CONNECTION_FAILED', `console connection failed: ${error.message}`),
          );
        });
      });
      process.stderr.write('\nConsole closed.\n');
    });
}
