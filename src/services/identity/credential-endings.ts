/**
 * Which of some tokens no longer hold, read from the store: revoked, expired, deleted, or of a
 * disabled identity. Live sessions (live-sessions.ts) are checked against it when they open (a
 * revocation between the request's authentication and the registration would otherwise be missed)
 * and every few seconds, which also ends them at their token's expiry and after a revocation made
 * by another replica.
 */
import type { Db } from '../../store/store.js';
import type { SessionEnd } from './live-sessions.js';

const chunk = 500;

export async function credentialEndings(
  db: Db,
  now: number,
  tokenIds: readonly string[],
): Promise<Map<string, SessionEnd>> {
  const endings = new Map<string, SessionEnd>();
  for (let i = 0; i < tokenIds.length; i += chunk) {
    const ids = tokenIds.slice(i, i + chunk);
    const rows = await db
      .selectFrom('tokens')
      .innerJoin('identities', 'identities.id', 'tokens.identity_id')
      .select(['tokens.id', 'tokens.revoked_at', 'tokens.expires_at', 'identities.disabled'])
      .where('tokens.id', 'in', ids)
      .execute();
    const found = new Map(rows.map((row) => [row.id, row]));
    for (const id of ids) {
      const row = found.get(id);
      if (!row)
        endings.set(id, { code: 'ZEN_UNAUTHENTICATED', message: 'the token no longer exists' });
      else if (row.revoked_at !== null)
        endings.set(id, {
          code: 'ZEN_TOKEN_EXPIRED',
          message: 'the session or token was revoked; log in again',
        });
      else if (row.expires_at !== null && Number(row.expires_at) <= now)
        endings.set(id, {
          code: 'ZEN_TOKEN_EXPIRED',
          message: 'the session or token has expired; log in again',
        });
      else if (row.disabled === 1)
        endings.set(id, { code: 'ZEN_UNAUTHENTICATED', message: 'this identity is disabled' });
    }
  }
  return endings;
}
