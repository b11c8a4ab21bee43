import { createInterface } from 'node:readline';
import { ZenithError } from '../core/errors.js';

/** Reads a secret from standard input: the whole input when piped, a hidden prompt on a terminal. */
export async function readSecret(question: string): Promise<string> {
  if (!process.stdin.isTTY) {
    let text = '';
    for await (const chunk of process.stdin) text += String(chunk);
    const line = text.split('\n')[0]?.trim() ?? '';
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
