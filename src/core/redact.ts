/** Removes secrets from values that are stored or shown (audit parameters). */
const secretKey = /pass(word)?|secret|token|credential|private.?key|api.?key/i;

/** A copy of `value` with every field whose name suggests a secret replaced, at any depth. */
export function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => withoutSecrets(item));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    out[key] = secretKey.test(key) ? '[redacted]' : withoutSecrets(item);
  }
  return out;
}
