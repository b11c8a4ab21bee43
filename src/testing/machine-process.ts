/**
 * The "machine" behind a simulated BMC: a long-running command in its own
 * process group that power-on starts and power-off kills (the whole group,
 * with SIGKILL, as pulling the plug would). The Redfish simulator's power
 * hooks drive one per simulated system; the IPMI test BMC does the same from
 * its chassis control script (./ipmi-bmc.ts). A later physical host is a
 * zenith agent in its own PID and network namespace (ip netns exec NS unshare --pid
 * --fork --kill-child --mount-proc …; ./physical-hosts.ts), started the same way.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export class MachineProcess {
  readonly #command: string[];
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();

  constructor(command: string[] = ['sleep', 'infinity']) {
    this.#command = command;
  }

  /** The process id while it runs (also its process group id). */
  get pid(): number | undefined {
    const child = this.#child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const [command, ...args] = this.#command as [string, ...string[]];
    const child = spawn(command, args, { detached: true, stdio: 'ignore' });
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', reject);
    });
  }

  /** Kills the machine's whole process group and waits until its first process is gone. */
  async stop(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      this.#child?.kill('SIGKILL');
    }
    await this.#exited;
  }
}
