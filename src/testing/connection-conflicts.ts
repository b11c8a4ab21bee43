/**
 * Checks shared by the "same hypervisor added twice" tests: what a refused add must leave as it
 * was (connections and identities), and the shape of the refusal itself.
 */
import assert from 'node:assert/strict';
import type { TestServer } from './control-plane.js';

interface Listed {
  items: Array<{ id: string }>;
}

interface Refusal {
  error: { code: string; message: string; details: { connection?: unknown } };
}

/** The ids of every connection and identity: a refused add changes neither. */
export async function savedConnectionsAndIdentities(
  s: TestServer,
  token: string,
): Promise<{ connections: string[]; identities: string[] }> {
  const ids = async (path: string) =>
    ((await s.request('GET', path, { token })).body as Listed).items.map((item) => item.id);
  return { connections: await ids('/connections'), identities: await ids('/users') };
}

/** A 409 ZEN_CONFLICT that names the connection already holding the peer, in details and message. */
export function assertRefusedAsDuplicate(
  answer: { status: number; body: unknown },
  existing: { id: string; name: string },
): void {
  assert.equal(answer.status, 409, JSON.stringify(answer.body));
  const { error } = answer.body as Refusal;
  assert.equal(error.code, 'ZEN_CONFLICT');
  assert.deepEqual(error.details.connection, existing);
  assert.ok(error.message.includes(`'${existing.name}' (${existing.id})`), error.message);
}
