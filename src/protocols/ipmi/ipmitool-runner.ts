/**
 * Runs ipmitool against one BMC (docs/decisions/0030-ipmi-through-ipmitool.md):
 * always IPMI 2.0 over LAN (`-I lanplus`) with cipher suite 3 (`-C 3`:
 * RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128), the password in the child's
 * environment (`-E` reads IPMI_PASSWORD) so `ps` never shows it, and a
 * deadline after which the process is killed. ipmitool reports every session
 * failure with one sentence; when a session cannot be opened the call is
 * repeated once verbosely to tell a refused login from a BMC that does not
 * answer. Nothing here logs.
 */
import { spawn } from 'node:child_process';
import { ZenithError } from '../../core/errors.js';

export interface IpmiTarget {
  host: string;
  /** UDP port of the BMC's LAN channel; default 623. */
  port?: number;
  username: string;
  password: string;
}

export interface IpmitoolOptions {
  /** The ipmitool executable; default 'ipmitool' on PATH. */
  command?: string;
  /** Deadline of one call (the process is killed after it); default 20 s. */
  timeoutMs?: number;
  /** ipmitool's own wait for an answer, in seconds (-N); default 2. */
  answerTimeoutSeconds?: number;
  /** ipmitool's own retries of an unanswered request (-R); default 2. */
  retries?: number;
}

/** What the IPMI client needs of ipmitool: run one command, get its standard output. */
export interface IpmiCommandRunner {
  run(args: string[]): Promise<string>;
}

const sessionFailure = /Unable to establish (IPMI v2 \/ RMCP\+|LAN) session/i;
const authRefusal =
  /RAKP \d+ (HMAC is invalid|message indicates an error)|unauthorized name|invalid (user|password)|insufficient (resources|privilege)|privilege level/i;

export class IpmitoolRunner implements IpmiCommandRunner {
  readonly #target: IpmiTarget;
  readonly #command: string;
  readonly #timeoutMs: number;
  readonly #answerTimeout: number;
  readonly #retries: number;

  constructor(target: IpmiTarget, options: IpmitoolOptions = {}) {
    this.#target = target;
    this.#command = options.command ?? 'ipmitool';
    this.#timeoutMs = options.timeoutMs ?? 20_000;
    this.#answerTimeout = options.answerTimeoutSeconds ?? 2;
    this.#retries = options.retries ?? 2;
  }

  get where(): string {
    return `${this.#target.host}:${this.#target.port ?? 623}`;
  }

  async run(args: string[]): Promise<string> {
    const result = await this.#spawn(this.#baseArgs(this.#retries).concat(args));
    if (result.code === 0) return result.stdout;
    const message = firstLines(result.stderr) || `ipmitool exited with ${result.code}`;
    if (sessionFailure.test(result.stderr)) {
      // Repeat once, verbosely: only then does ipmitool say why the session failed.
      const diagnosis = await this.#spawn(['-v', ...this.#baseArgs(1), 'mc', 'guid']);
      if (diagnosis.code === 0 || authRefusal.test(diagnosis.stderr))
        throw new ZenithError(
          'IPMI_AUTH_FAILED',
          `the BMC at ${this.where} refused the login of ${this.#target.username}`,
          { host: this.where, user: this.#target.username },
        );
      throw new ZenithError('IPMI_UNREACHABLE', `the BMC at ${this.where} does not answer`, {
        host: this.where,
        reason: message,
      });
    }
    throw new ZenithError('IPMI_COMMAND_FAILED', `ipmitool ${args.join(' ')}: ${message}`, {
      host: this.where,
      command: args,
      exitCode: result.code,
      message,
    });
  }

  #baseArgs(retries: number): string[] {
    return [
      '-I',
      'lanplus',
      '-C',
      '3',
      '-H',
      this.#target.host,
      '-p',
      String(this.#target.port ?? 623),
      '-U',
      this.#target.username,
      '-E',
      '-N',
      String(this.#answerTimeout),
      '-R',
      String(retries),
    ];
  }

  #spawn(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.#command, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', IPMI_PASSWORD: this.#target.password },
      });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, this.#timeoutMs);
      child.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          error.code === 'ENOENT'
            ? new ZenithError(
                'IPMI_TOOL_MISSING',
                `${this.#command} is not installed (apt-get install -y ipmitool)`,
                { command: this.#command },
              )
            : new ZenithError(
                'IPMI_COMMAND_FAILED',
                `cannot run ${this.#command}: ${error.message}`,
                {
                  command: this.#command,
                },
              ),
        );
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        if (timedOut)
          reject(
            new ZenithError(
              'IPMI_TIMEOUT',
              `ipmitool ${args.slice(-2).join(' ')} against ${this.where} did not finish within ${this.#timeoutMs} ms`,
              { host: this.where, timeoutMs: this.#timeoutMs },
            ),
          );
        else resolve({ code: code ?? -1, stdout, stderr });
      });
    });
  }
}

function firstLines(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .slice(0, 3)
    .join('; ')
    .slice(0, 500);
}
