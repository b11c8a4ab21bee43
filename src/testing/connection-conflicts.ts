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

interface Added {
  status: number;
  body: unknown;
}

/**
 * Two adds of one peer at once: exactly one is created and connected, the other is refused naming
 * it, and one connection with one new service identity is all that remains. Answers the winner.
 */
export async function assertOneOfTwoAddsWins(
  s: TestServer,
  token: string,
  addBoth: () => Promise<Added[]>,
): Promise<{ id: string; name: string }> {
  const before = await savedConnectionsAndIdentities(s, token);
  const answers = await addBoth();
  const winners = answers.filter((a) => a.status === 201);
  const losers = answers.filter((a) => a.status !== 201);
  assert.equal(winners.length, 1, JSON.stringify(answers.map((a) => a.body)));
  const created = winners[0]!.body as {
    id: string;
    name: string;
    state: string;
    lastError: string | null;
  };
  const winner = { id: created.id, name: created.name };
  assert.equal(created.state, 'connected', created.lastError ?? '');
  assertRefusedAsDuplicate(losers[0]!, winner);
  const after = await savedConnectionsAndIdentities(s, token);
  assert.deepEqual(after.connections, [winner.id]);
  assert.equal(after.identities.length, before.identities.length + 1, 'one service identity');
  return winner;
}
