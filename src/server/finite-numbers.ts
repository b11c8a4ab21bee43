/** Finding a number that is not finite (±Infinity, NaN) anywhere in a validated request part. */

/**
 * The JSON-pointer-like path (`/limit`, `/settings/seed`, `/items/0`) of the first number in `value`
 * that is not finite, or null. Iterative, so no nesting can overflow the stack.
 */
export function nonFiniteNumberPath(value: unknown): string | null {
  const pending: Array<{ value: unknown; path: string }> = [{ value, path: '' }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const current = next.value;
    if (typeof current === 'number') {
      if (!Number.isFinite(current)) return next.path;
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--)
        pending.push({ value: current[i] as unknown, path: `${next.path}/${i}` });
    } else if (current !== null && typeof current === 'object') {
      const entries = Object.entries(current as Record<string, unknown>);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, item] = entries[i]!;
        pending.push({
          value: item,
          path: `${next.path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`,
        });
      }
    }
  }
  return null;
}
