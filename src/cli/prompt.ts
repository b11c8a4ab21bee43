import { createInterface } from 'node:readline';
import { ZenithError } from '../api/errors.js';

let piped: string[] | undefined;

/** The lines of standard input when it is piped, read once: several secrets come one a line. */
async function pipedLines(): Promise<string[]> {
  if (piped === undefined) {
    let text = '';
    for await (const chunk of process.stdin) text += String(chunk);
    piped = text.split('\n').map((line) => line.trim());
  }
  return piped;
}

/**
 * Reads a secret from standard input: the next line when piped (the first secret asked for is the
 * first line, the second the second), a hidden prompt on a terminal.
 */
export async function readSecret(question: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const line = (await pipedLines()).shift() ?? '';
    if (!line) throw new ZenithError('ZEN_BAD_REQUEST', 'no password on standard input');
    return line;
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const output = rl as unknown as { _writeToOutput: (s: string) => void };
  process.stderr.write(question);
  output._writeToOutput = () => undefined;
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}
