/**
 * A `zenith agent` process for tests: started against a test server with its own state dir and
 * storage roots (TCG), its output kept for failure messages, killed (SIGKILL) and awaited. An
 * agent that reported an unhandled promise rejection fails the test that kills it
 * (process-output.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ProcessOutput } from './process-output.js';

const zenithBin = join(import.meta.dirname, '../../bin/zenith.js');

export interface AgentProcessOptions {
  serverUrl: string;
  stateDir: string;
  storageRoots: string[];
  hostName: string;
  /** More arguments, e.g. ['--token', T] to enroll. */
  extra?: string[];
  /** More environment variables. */
  env?: Record<string, string>;
}

export interface AgentProcess {
  readonly process: ChildProcess;
  /** Everything it wrote so far (stdout and stderr). */
  output(): string;
  /**
   * SIGKILL, then wait for it to exit (nothing if it already has). Throws when the agent reported
   * an unhandled promise rejection, with its output.
   */
  kill(): Promise<void>;
}

export function spawnAgent(options: AgentProcessOptions): AgentProcess {
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
    {
      env: { ...process.env, ZENITH_LOG_LEVEL: 'info', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const output = new ProcessOutput(`zenith agent (${options.hostName})`, child);
  return {
    process: child,
    output: () => output.text,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      // 'close', not 'exit': the last lines (the unhandled rejection's) may still be in the pipe.
      await output.closed;
      output.check();
    },
  };
}

/** Kills every agent, then throws (once all have exited) if any reported an unhandled rejection. */
export async function killAgents(agents: ReadonlyArray<AgentProcess | undefined>): Promise<void> {
  const outcomes = await Promise.allSettled(
    agents.flatMap((agent) => (agent ? [agent.kill()] : [])),
  );
  const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as Error] : []));
  if (failures.length > 0) throw new Error(failures.map((f) => f.message).join('\n\n'));
}
