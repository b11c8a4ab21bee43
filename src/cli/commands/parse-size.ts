/** Sizes on the command line: 512MiB, 2GiB, 1.5G or a number of bytes. */
import { ZenithError } from '../../api/errors.js';

const units: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
};

export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = match ? units[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined)
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      `'${text}' is not a size: use e.g. 512MiB, 2GiB or a number of bytes`,
    );
  return Math.round(Number(match[1]) * unit);
}
