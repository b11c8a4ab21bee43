/**
 * Deterministic JSON: object keys sorted at every depth, no whitespace. Used
 * where bytes must be reproducible (audit hashes), so that a record read back
 * from either database hashes the same as when it was written.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (value === undefined) return 'null';
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

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
