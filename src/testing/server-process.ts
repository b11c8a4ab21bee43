/**
 * A real `zenith serve` process and the real `zenith` command, for end-to-end and crash tests. A
 * process that reported an unhandled promise rejection fails the test that ends it
 * (process-output.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminPassword } from './control-plane.js';
import { ProcessOutput } from './process-output.js';

const zenithBin = join(import.meta.dirname, '..', '..', 'bin', 'zenith.js');

export interface ServerProcess {
  url: string;
  process: ChildProcess;
  output(): string;
  /**
   * Sends the signal (SIGTERM by default) and waits for the exit (nothing if it has exited).
   * Throws when the server reported an unhandled promise rejection, with its output.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function startServerProcess(options: {
  dataDir: string;
  databaseUrl?: string;
  port?: number;
  /** The address to listen on (default 127.0.0.1): agents in network namespaces reach a bridge's. */
  host?: string;
  /** Connect this machine as a QEMU host, as `zenith serve` does by default; off unless asked. */
  localHost?: boolean;
  /** More environment variables. */
  env?: Record<string, string>;
}): Promise<ServerProcess> {
  const args = [
    zenithBin,
    'serve',
    '--data-dir',
    options.dataDir,
    '--port',
    String(options.port ?? 0),
  ];
  if (options.host) args.push('--host', options.host);
  if (options.databaseUrl) args.push('--database', options.databaseUrl);
  if (!options.localHost) args.push('--no-local-host');
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      ZENITH_ADMIN_PASSWORD: adminPassword,
      ZENITH_LOG_LEVEL: 'info',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = new ProcessOutput(`zenith serve (${options.dataDir})`, child);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`zenith serve did not start in 60 s:\n${output.text}`)),
      60_000,
    );
    const onData = () => {
      const match = /"address":"(http:\/\/[^"]+)".*zenith is serving/.exec(output.text);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    // After the output's own listeners: the text is complete when this runs.
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`zenith serve exited with ${code}:\n${output.text}`));
    });
  });
  return {
    url,
    process: child,
    output: () => output.text,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      // 'close', not 'exit': the last lines (the unhandled rejection's) may still be in the pipe.
      await output.closed;
      output.check();
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type CliRunner = (
  args: string[],
  options?: { env?: Record<string, string>; input?: string },
) => Promise<CliResult>;

const runnerConfigs = new WeakMap<CliRunner, string>();

/** The config file (with the session) a runner uses, for a command started by hand. */
export function configOf(runner: CliRunner): string {
  return runnerConfigs.get(runner)!;
}

/** Runs `zenith ARGS…` as a user would, with its own config file (where login keeps the session). */
export function cliRunner(server: string): CliRunner {
  const config = join(mkdtempSync(join(tmpdir(), 'zenith-cli-')), 'cli.json');
  const run: CliRunner = (args, options = {}) =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [zenithBin, '--server', server, ...args], {
        env: { ...process.env, ZENITH_CONFIG: config, ...(options.env ?? {}) },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      const output = new ProcessOutput(`zenith ${args.join(' ')}`, child);
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdin.end(options.input ?? '');
      // 'close', not 'exit': all the output is read by then.
      child.once('close', (code) => {
        const failure = output.error();
        if (failure) reject(failure);
        else resolve({ code: code ?? 1, stdout, stderr });
      });
    });
  runnerConfigs.set(run, config);
  return run;
}
