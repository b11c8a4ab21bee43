/** A real `zenith serve` process and the real `zenith` command, for end-to-end and crash tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminPassword } from './control-plane.js';

const zenithBin = join(import.meta.dirname, '..', '..', 'bin', 'zenith.js');

export interface ServerProcess {
  url: string;
  process: ChildProcess;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function startServerProcess(options: {
  dataDir: string;
  databaseUrl?: string;
  port?: number;
}): Promise<ServerProcess> {
  const args = [
    zenithBin,
    'serve',
    '--data-dir',
    options.dataDir,
    '--port',
    String(options.port ?? 0),
  ];
  if (options.databaseUrl) args.push('--database', options.databaseUrl);
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ZENITH_ADMIN_PASSWORD: adminPassword, ZENITH_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`zenith serve did not start in 60 s:\n${output}`)),
      60_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"address":"(http:\/\/[^"]+)".*zenith is serving/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`zenith serve exited with ${code}:\n${output}`));
    });
  });
  return {
    url,
    process: child,
    output: () => output,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `zenith ARGS…` as a user would, with its own config file (where login keeps the session). */
export function cliRunner(
  server: string,
): (
  args: string[],
  options?: { env?: Record<string, string>; input?: string },
) => Promise<CliResult> {
  const config = join(mkdtempSync(join(tmpdir(), 'zenith-cli-')), 'cli.json');
  return (args, options = {}) =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [zenithBin, '--server', server, ...args], {
        env: { ...process.env, ZENITH_CONFIG: config, ...(options.env ?? {}) },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdin.end(options.input ?? '');
      child.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
}
