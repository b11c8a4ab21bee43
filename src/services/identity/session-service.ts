/**
 * Sessions: the credentials an identity acts with — login sessions and API tokens — and what they
 * keep open (live-sessions.ts). A token is `tok_….secret`; only the secret's SHA-256 is stored (it
 * is a long random value, so a fast hash is enough) and it is shown once. Authentication answers
 * from a short cache, which every revocation and every change of the identity evicts at once.
 * Who the identities are, and their passwords, is identity-service.ts: it tells this service when
 * an identity changes, and asks it for a session after a login.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { constantTimeEqualHex, randomSecret, sha256Hex } from '../../core/crypto.js';
import { isId, newId } from '../../core/ids.js';
import type { Store } from '../../store/store.js';
import type { TokensTable } from '../../store/schema.js';
import { credentialEndings } from './credential-endings.js';
import { LiveSessions, type SessionEnd } from './live-sessions.js';
import type { Principal, RoleName } from './roles.js';
import { rowById } from '../../store/rows.js';

export interface TokenInfo {
  id: string;
  identityId: string;
  kind: 'session' | 'api';
  name: string;
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

export interface IssuedToken {
  token: string;
  info: TokenInfo;
}

const sessionLifetimeMs = 12 * 3600_000;
const cacheMs = 30_000;

function tokenOf(row: TokensTable): TokenInfo {
  const n = (v: number | null) => (v === null ? null : Number(v));
  return {
    id: row.id,
    identityId: row.identity_id,
    kind: row.kind as TokenInfo['kind'],
    name: row.name,
    createdAt: Number(row.created_at),
    expiresAt: n(row.expires_at),
    lastUsedAt: n(row.last_used_at),
    revokedAt: n(row.revoked_at),
  };
}

export class SessionService {
  /** Streams and consoles open under a token: ended here with it. */
  readonly live: LiveSessions;
  /** Verified tokens, so that a request does not cost a database read; revocation evicts at once. */
  readonly #cache = new Map<
    string,
    { principal: Principal; secretHash: string; expiresAt: number | null; cachedAt: number }
  >();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    options: {
      /** Where a live session's own failure to end or re-evaluate goes. */
      onLiveSessionError?: (error: unknown) => void;
    } = {},
  ) {
    this.live = new LiveSessions(options.onLiveSessionError);
  }

  /** A login session of the identity, for the session lifetime (12 hours). */
  async startSession(identityId: string): Promise<IssuedToken> {
    return this.#issue(identityId, 'session', 'login', this.clock.now() + sessionLifetimeMs);
  }

  async createToken(
    identityId: string,
    name: string,
    expiresAt: number | null = null,
  ): Promise<IssuedToken> {
    if (!/^[\w .:-]{1,64}$/.test(name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'a token name is 1–64 letters, digits, spaces and . : _ -',
        { name },
      );
    if (expiresAt !== null && expiresAt <= this.clock.now())
      throw new ZenithError('ZEN_BAD_REQUEST', 'the expiry must be in the future');
    return this.#issue(identityId, 'api', name, expiresAt);
  }

  async #issue(
    identityId: string,
    kind: TokenInfo['kind'],
    name: string,
    expiresAt: number | null,
  ): Promise<IssuedToken> {
    const now = this.clock.now();
    const secret = randomSecret(32);
    const row: TokensTable = {
      id: newId('token', now),
      identity_id: identityId,
      kind,
      name,
      secret_hash: sha256Hex(secret),
      created_at: now,
      expires_at: expiresAt,
      last_used_at: null,
      revoked_at: null,
    };
    await this.store.db.insertInto('tokens').values(row).execute();
    return { token: `${row.id}.${secret}`, info: tokenOf(row) };
  }

  async listTokens(identityId?: string): Promise<TokenInfo[]> {
    let query = this.store.db.selectFrom('tokens').selectAll();
    if (identityId) query = query.where('identity_id', '=', identityId);
    return (await query.orderBy('created_at', 'desc').execute()).map(tokenOf);
  }

  async getToken(id: string): Promise<TokenInfo> {
    const row = await rowById(this.store.db, 'tokens', id, `no token ${id}`);
    return tokenOf(row);
  }

  async revokeToken(id: string): Promise<TokenInfo> {
    await this.store.db
      .updateTable('tokens')
      .set({ revoked_at: this.clock.now() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .execute();
    this.#cache.delete(id);
    this.live.endTokens([id], {
      code: 'ZEN_TOKEN_EXPIRED',
      message: 'the token was revoked; log in again',
    });
    return this.getToken(id);
  }

  /**
   * Revokes every session and API token of an identity but the session `keepSessionId` (a new
   * password: whoever knew the old one is logged out), and ends what they keep open.
   */
  async revokeAllOf(
    identityId: string,
    reason: SessionEnd,
    options: { keepSessionId?: string | undefined } = {},
  ): Promise<void> {
    let revoke = this.store.db
      .updateTable('tokens')
      .set({ revoked_at: this.clock.now() })
      .where('identity_id', '=', identityId)
      .where('revoked_at', 'is', null);
    if (options.keepSessionId !== undefined) {
      const keep = options.keepSessionId;
      revoke = revoke.where((eb) => eb.or([eb('id', '!=', keep), eb('kind', '!=', 'session')]));
    }
    const ended = await revoke.returning('id').execute();
    this.forgetIdentity(identityId);
    this.live.endTokens(
      ended.map((row) => row.id),
      reason,
    );
  }

  /** An identity's role, status or name changed: its tokens are checked again at their next use. */
  forgetIdentity(identityId: string): void {
    for (const [tokenId, entry] of this.#cache)
      if (entry.principal.id === identityId) this.#cache.delete(tokenId);
  }

  /** Why a token no longer holds (revoked, expired, gone, its identity disabled); null while it does. */
  async tokenEnding(tokenId: string): Promise<SessionEnd | null> {
    const endings = await credentialEndings(this.store.db, this.clock.now(), [tokenId]);
    return endings.get(tokenId) ?? null;
  }

  /**
   * Checks every live session's token against the store and ends those that no longer hold: their
   * expiry, and revocations this process did not make (another replica's). Answers how many ended.
   */
  async sweepSessions(): Promise<number> {
    const endings = await credentialEndings(this.store.db, this.clock.now(), this.live.tokenIds());
    for (const [tokenId, reason] of endings) this.live.endTokens([tokenId], reason);
    return endings.size;
  }

  /** Resolves `tok_….secret` to the identity it belongs to, or throws a 401 code. */
  async authenticate(presented: string): Promise<Principal> {
    const dot = presented.indexOf('.');
    const tokenId = dot > 0 ? presented.slice(0, dot) : '';
    const secret = presented.slice(dot + 1);
    if (!isId(tokenId, 'token') || secret.length < 16)
      throw new ZenithError('ZEN_UNAUTHENTICATED', 'the token is malformed');
    const now = this.clock.now();
    const secretHash = sha256Hex(secret);
    const cached = this.#cache.get(tokenId);
    if (
      cached &&
      now - cached.cachedAt < cacheMs &&
      constantTimeEqualHex(cached.secretHash, secretHash)
    ) {
      if (cached.expiresAt !== null && cached.expiresAt <= now)
        throw new ZenithError(
          'ZEN_TOKEN_EXPIRED',
          'the session or token has expired; log in again',
        );
      return cached.principal;
    }
    const row = await this.store.db
      .selectFrom('tokens')
      .innerJoin('identities', 'identities.id', 'tokens.identity_id')
      .select([
        'tokens.id as tokenId',
        'tokens.secret_hash',
        'tokens.expires_at',
        'tokens.revoked_at',
        'identities.id',
        'identities.kind',
        'identities.name',
        'identities.role',
        'identities.disabled',
      ])
      .where('tokens.id', '=', tokenId)
      .executeTakeFirst();
    if (!row || !constantTimeEqualHex(row.secret_hash, secretHash))
      throw new ZenithError('ZEN_UNAUTHENTICATED', 'the token is not valid');
    if (row.revoked_at !== null || (row.expires_at !== null && Number(row.expires_at) <= now))
      throw new ZenithError(
        'ZEN_TOKEN_EXPIRED',
        'the session or token has expired or was revoked; log in again',
      );
    if (row.disabled === 1)
      throw new ZenithError('ZEN_UNAUTHENTICATED', 'this identity is disabled');
    const principal: Principal = {
      id: row.id,
      kind: row.kind as Principal['kind'],
      name: row.name,
      role: row.role as RoleName,
      tokenId,
    };
    this.#cache.set(tokenId, {
      principal,
      secretHash,
      expiresAt: row.expires_at === null ? null : Number(row.expires_at),
      cachedAt: now,
    });
    void this.store.db
      .updateTable('tokens')
      .set({ last_used_at: now })
      .where('id', '=', tokenId)
      .execute()
      .catch(() => undefined);
    return principal;
  }
}
