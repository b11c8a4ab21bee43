/**
 * A `zenith agent` process for tests: started against a test server with its own state dir and
 * storage roots (TCG), its output kept for failure messages, killed (SIGKILL) and awaited.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

const zenithBin = join(import.meta.dirname, '../../bin/zenith.js');

export interface AgentProcessOptions {
  serverUrl: string;
  stateDir: string;
  storageRoots: string[];
  hostName: string;
  /** More arguments, e.g. ['--token', T] to enroll. */
  extra?: string[];
}

export interface AgentProcess {
  readonly process: ChildProcess;
  /** Everything it wrote so far (stdout and stderr). */
  output(): string;
  /** SIGKILL, then wait for it to exit (nothing if it already has). */
  kill(): Promise<void>;
}

export function spawnAgent(options: AgentProcessOptions): AgentProcess {
  let output = '';
  const child = spawn(
    process.execPath,
    [
      zenithBin,
      'agent',
      '--server',
      options.serverUrl,
      '--state-dir',
      options.stateDir,
      ...options.storageRoots.flatMap((root) => ['--storage-root', root]),
      '--accelerator',
      'tcg',
      '--host-name',
      options.hostName,
      ...(options.extra ?? []),
    ],
    { env: { ...process.env, ZENITH_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return {
    process: child,
    output: () => output,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}
