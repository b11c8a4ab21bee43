/** Paths confined to roots: a disk inside a host's storage roots, a repository inside the backup roots. */
import { existsSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { ZenithError } from './errors.js';

function bad(message: string, details: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('ZEN_BAD_REQUEST', message, details);
}

/**
 * Resolves a path and proves it lies inside one of the roots, following
 * symlinks of every part that exists, so neither `..` nor a link can escape.
 */
export function pathWithinRoots(
  path: string,
  roots: string[],
  what = 'the storage roots of this host',
): string {
  if (roots.length === 0)
    throw new ZenithError('ZEN_CONFIG_INVALID', `no roots are configured: ${what}`);
  if (path.includes('\0')) throw bad('a path may not contain NUL characters', { path });
  const candidate = isAbsolute(path) ? resolve(path) : resolve(roots[0]!, path);
  // Follow links on the longest existing prefix of the path.
  let existing = candidate;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const real = resolve(realpathSync(existing), relative(existing, candidate));
  for (const root of roots) {
    const realRoot = existsSync(root) ? realpathSync(root) : resolve(root);
    const inside = relative(realRoot, real);
    if (inside === '' || (!inside.startsWith(`..${sep}`) && inside !== '..' && !isAbsolute(inside)))
      return real;
  }
  throw bad(`'${path}' is outside ${what} (${roots.join(', ')})`, {
    path,
    roots,
  });
}
