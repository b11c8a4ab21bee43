/** Removes secrets from values that are stored or shown (audit parameters). */
const secretKey = /pass(word)?|secret|token|credential|private.?key|api.?key|^key$/i;

/**
 * Deeper than this, a value is replaced by a marker: a record stays small and serializable
 * (JSON.stringify recurses). Request bodies are refused past 64 levels, so none is cut here.
 */
export const maxRedactedDepth = 100;
export const tooDeep = '[too deep]';

/**
 * A copy of `value` with every field whose name suggests a secret replaced, at any depth. Iterative,
 * so no input can overflow the stack.
 */
export function withoutSecrets(value: unknown): unknown {
  const root: { value: unknown } = { value: undefined };
  // Each step copies one value into its place in the copy.
  const pending: Array<{
    from: unknown;
    into: Record<string, unknown>;
    key: string;
    depth: number;
  }> = [{ from: value, into: root, key: 'value', depth: 0 }];
  for (let step = pending.pop(); step !== undefined; step = pending.pop()) {
    const { from, into, key, depth } = step;
    if (from === null || typeof from !== 'object') {
      into[key] = from;
      continue;
    }
    if (depth >= maxRedactedDepth) {
      into[key] = tooDeep;
      continue;
    }
    if (Array.isArray(from)) {
      const copy: unknown[] = new Array<unknown>(from.length);
      into[key] = copy;
      from.forEach((item: unknown, index) =>
        pending.push({
          from: item,
          into: copy as unknown as Record<string, unknown>,
          key: String(index),
          depth: depth + 1,
        }),
      );
      continue;
    }
    const copy: Record<string, unknown> = {};
    into[key] = copy;
    for (const [name, item] of Object.entries(from as Record<string, unknown>)) {
      // Defined now, in the original order (filled later); defineProperty, so that a key named
      // __proto__ stays a key.
      const secret = secretKey.test(name);
      Object.defineProperty(copy, name, {
        value: secret ? '[redacted]' : undefined,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      if (!secret) pending.push({ from: item, into: copy, key: name, depth: depth + 1 });
    }
  }
  return root.value;
}
