/**
 * Identities (people and service identities), their passwords, login
 * sessions and API tokens. Secrets are shown once at creation and stored
 * only as hashes: passwords with scrypt, tokens with SHA-256 (they are long
 * random values, so a fast hash is enough).
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import {
  constantTimeEqualHex,
  hashPassword,
  randomSecret,
  sha256Hex,
  verifyPassword,
} from '../../core/crypto.js';
import { isId, newId } from '../../core/ids.js';
import type { Store } from '../../store/store.js';
import type { IdentitiesTable, TokensTable } from '../../store/schema.js';
import type { Facts } from '../inventory/model.js';
import { checkAttributes } from './binding-conditions.js';
import { credentialEndings } from './credential-endings.js';
import type { LdapDirectory } from './ldap-directory.js';
import { LiveSessions, type SessionEnd } from './live-sessions.js';
import { LoginLimiter, type LoginAttempt } from './login-limiter.js';
import { isRoleName, type Principal, type RoleName } from './roles.js';

export interface Identity {
  id: string;
  kind: 'user' | 'service';
  name: string;
  displayName: string | null;
  role: RoleName;
  /** local (password here) or ldap (password in the directory). */
  source: string;
  /** Facts about the identity (a user's department) that binding conditions read as subject.*. */
  attributes: Facts;
  disabled: boolean;
  createdAt: number;
}

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
const namePattern = /^[a-z][a-z0-9._-]{1,63}$/;
const minPasswordLength = 12;
const cacheMs = 30_000;

function identityOf(row: IdentitiesTable): Identity {
  return {
    id: row.id,
    kind: row.kind as Identity['kind'],
    name: row.name,
    displayName: row.display_name,
    role: row.role as RoleName,
    source: row.source,
    attributes: JSON.parse(row.attributes) as Facts,
    disabled: row.disabled === 1,
    createdAt: Number(row.created_at),
  };
}

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

function mergeAttributes(current: Facts, changes: Facts): Facts {
  const merged = { ...current };
  for (const [key, value] of Object.entries(changes))
    if (value === null) delete merged[key];
    else merged[key] = value;
  return merged;
}

export function checkPassword(password: string): void {
  if (password.length < minPasswordLength)
    throw new ZenithError(
      'ZEN_WEAK_PASSWORD',
      `a password needs at least ${minPasswordLength} characters`,
      { minLength: minPasswordLength },
    );
  if (new Set(password).size < 4)
    throw new ZenithError('ZEN_WEAK_PASSWORD', 'the password repeats too few characters');
}

export class IdentityService {
  readonly limiter: LoginLimiter;
  /** The LDAP/AD directory users may log in against; null: local accounts only. */
  directory: LdapDirectory | null = null;
  /** Called when an identity's attributes or role change (binding conditions read them). */
  onChanged: ((identity: Identity) => void) | null = null;
  /** Called after each directory login with the user's directory groups (to map them to Zenith groups). */
  onDirectoryLogin: ((identityId: string, directoryGroups: string[]) => Promise<void>) | null =
    null;
  /** Streams and consoles open under a token: ended here with it (live-sessions.ts). */
  readonly sessions = new LiveSessions();
  /** Verified tokens, so that a request does not cost a database read; revocation evicts at once. */
  readonly #cache = new Map<
    string,
    { principal: Principal; secretHash: string; expiresAt: number | null; cachedAt: number }
  >();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {
    this.limiter = new LoginLimiter(clock);
  }

  /** On first start: creates `admin`. Returns the generated password (to print once) when none was given. */
  async bootstrap(
    adminPassword: string | undefined,
  ): Promise<{ created: boolean; generatedPassword?: string }> {
    const any = await this.store.db
      .selectFrom('identities')
      .select('id')
      .limit(1)
      .executeTakeFirst();
    if (any) return { created: false };
    const password = adminPassword ?? randomSecret(15);
    if (adminPassword !== undefined) checkPassword(adminPassword);
    await this.createUser({ name: 'admin', password, role: 'admin', displayName: 'Administrator' });
    return adminPassword === undefined
      ? { created: true, generatedPassword: password }
      : { created: true };
  }

  async createUser(input: {
    name: string;
    password: string;
    role: string;
    displayName?: string | null;
  }): Promise<Identity> {
    checkPassword(input.password);
    return this.#createIdentity({
      ...input,
      kind: 'user',
      passwordHash: await hashPassword(input.password),
    });
  }

  /** A service identity (connection, agent, automation) and its first API token. */
  async createService(input: {
    name: string;
    role: string;
    displayName?: string | null;
  }): Promise<{ identity: Identity; token: IssuedToken }> {
    const identity = await this.createServiceIdentity(input);
    const token = await this.createToken(identity.id, 'initial');
    return { identity, token };
  }

  /** A service identity with no credentials yet (a connection: the control plane acts as it). */
  async createServiceIdentity(input: {
    name: string;
    role: string;
    displayName?: string | null;
  }): Promise<Identity> {
    return this.#createIdentity({ ...input, kind: 'service', passwordHash: null });
  }

  async #createIdentity(input: {
    name: string;
    role: string;
    kind: Identity['kind'];
    displayName?: string | null | undefined;
    passwordHash: string | null;
    source?: 'local' | 'ldap';
  }): Promise<Identity> {
    if (!namePattern.test(input.name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${input.name}' is not a valid name: 2–64 lower-case letters, digits and . _ -, starting with a letter`,
        { name: input.name },
      );
    if (!isRoleName(input.role))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `unknown role '${input.role}' (admin, operator, viewer)`,
        { role: input.role },
      );
    const now = this.clock.now();
    const row: IdentitiesTable = {
      id: newId(input.kind === 'user' ? 'user' : 'service', now),
      kind: input.kind,
      name: input.name,
      display_name: input.displayName ?? null,
      role: input.role,
      password_hash: input.passwordHash,
      source: input.source ?? 'local',
      attributes: '{}',
      disabled: 0,
      created_at: now,
      updated_at: now,
    };
    const clash = await this.store.db
      .selectFrom('identities')
      .select('id')
      .where('name', '=', input.name)
      .executeTakeFirst();
    if (clash)
      throw new ZenithError('ZEN_CONFLICT', `an identity named '${input.name}' exists`, {
        name: input.name,
      });
    await this.store.db.insertInto('identities').values(row).execute();
    this.onChanged?.(identityOf(row));
    return identityOf(row);
  }

  async list(): Promise<Identity[]> {
    return (await this.store.db.selectFrom('identities').selectAll().orderBy('name').execute()).map(
      identityOf,
    );
  }

  async get(idOrName: string): Promise<Identity> {
    const column = isId(idOrName, 'user') || isId(idOrName, 'service') ? 'id' : 'name';
    const row = await this.store.db
      .selectFrom('identities')
      .selectAll()
      .where(column, '=', idOrName)
      .executeTakeFirst();
    if (!row)
      throw new ZenithError('ZEN_NOT_FOUND', `no identity '${idOrName}'`, { identity: idOrName });
    return identityOf(row);
  }

  async update(
    id: string,
    changes: {
      role?: string;
      disabled?: boolean;
      displayName?: string | null;
      /** Merged into the attributes; a null value removes one. */
      attributes?: Record<string, unknown>;
    },
  ): Promise<Identity> {
    const current = await this.get(id);
    const attributes =
      changes.attributes === undefined
        ? undefined
        : mergeAttributes(current.attributes, checkAttributes(changes.attributes));
    if (changes.role !== undefined && !isRoleName(changes.role))
      throw new ZenithError('ZEN_BAD_REQUEST', `unknown role '${changes.role}'`, {
        role: changes.role,
      });
    const losesAdmin =
      current.role === 'admin' &&
      ((changes.role !== undefined && changes.role !== 'admin') || changes.disabled === true);
    if (losesAdmin) await this.#assertAnotherAdmin(current.id);
    await this.store.db
      .updateTable('identities')
      .set({
        ...(changes.role !== undefined ? { role: changes.role } : {}),
        ...(changes.disabled !== undefined ? { disabled: changes.disabled ? 1 : 0 } : {}),
        ...(changes.displayName !== undefined ? { display_name: changes.displayName } : {}),
        ...(attributes !== undefined ? { attributes: JSON.stringify(attributes) } : {}),
        updated_at: this.clock.now(),
      })
      .where('id', '=', current.id)
      .execute();
    this.#evictIdentity(current.id);
    const updated = await this.get(current.id);
    this.onChanged?.(updated);
    if (changes.disabled === true)
      this.sessions.endIdentity(current.id, {
        code: 'ZEN_UNAUTHENTICATED',
        message: 'this identity is disabled',
      });
    else if (changes.role !== undefined || attributes !== undefined)
      this.sessions.identityChanged(current.id, updated.role);
    return updated;
  }

  async remove(id: string): Promise<Identity> {
    const current = await this.get(id);
    if (current.role === 'admin') await this.#assertAnotherAdmin(current.id);
    await this.store.db.deleteFrom('identities').where('id', '=', current.id).execute();
    this.#evictIdentity(current.id);
    this.sessions.endIdentity(current.id, {
      code: 'ZEN_UNAUTHENTICATED',
      message: 'this identity was removed',
    });
    return current;
  }

  /**
   * Sets a user's password (an administrator's reset needs nothing more). Everyone who held a way in
   * is shut out: every session but `keepSessionId` (the one that made the change) ends and every API
   * token is revoked, so a stolen session cannot outlive the change through a token it minted.
   */
  async setPassword(
    id: string,
    password: string,
    options: { keepSessionId?: string } = {},
  ): Promise<void> {
    checkPassword(password);
    const current = await this.#localUser(id);
    await this.store.db
      .updateTable('identities')
      .set({ password_hash: await hashPassword(password), updated_at: this.clock.now() })
      .where('id', '=', current.id)
      .execute();
    let revoke = this.store.db
      .updateTable('tokens')
      .set({ revoked_at: this.clock.now() })
      .where('identity_id', '=', current.id)
      .where('revoked_at', 'is', null);
    if (options.keepSessionId !== undefined) {
      const keep = options.keepSessionId;
      revoke = revoke.where((eb) => eb.or([eb('id', '!=', keep), eb('kind', '!=', 'session')]));
    }
    // Whoever knew the old password is logged out: every session but the one changing it, every API token.
    const ended = await revoke.returning('id').execute();
    this.#evictIdentity(current.id);
    this.sessions.endTokens(
      ended.map((row) => row.id),
      { code: 'ZEN_TOKEN_EXPIRED', message: 'the password was changed; log in again' },
    );
  }

  /**
   * A user changes their own password: the current one is checked first, and a wrong one counts
   * like a failed login (name and address), so a stolen session cannot guess it either. The session
   * that asks stays; the others end and API tokens are revoked (setPassword).
   */
  async changeOwnPassword(
    principal: Principal,
    currentPassword: string,
    password: string,
    clientAddress: string,
  ): Promise<void> {
    checkPassword(password);
    const user = await this.#localUser(principal.id);
    const attempt = this.limiter.begin([`user:${user.name}`, `addr:${clientAddress}`]);
    try {
      const row = await this.store.db
        .selectFrom('identities')
        .select('password_hash')
        .where('id', '=', user.id)
        .executeTakeFirstOrThrow();
      if (!row.password_hash || !(await verifyPassword(currentPassword, row.password_hash))) {
        attempt.fail();
        throw new ZenithError(
          'ZEN_CURRENT_PASSWORD_WRONG',
          'the current password is wrong; the password was not changed',
        );
      }
      attempt.succeed([`user:${user.name}`]);
    } finally {
      attempt.release();
    }
    await this.setPassword(user.id, password, { keepSessionId: principal.tokenId });
  }

  /** A user whose password is kept here (not a service identity, not a directory user). */
  async #localUser(id: string): Promise<Identity> {
    const current = await this.get(id);
    if (current.kind !== 'user')
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'service identities authenticate with tokens, not passwords',
      );
    if (current.source === 'ldap')
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `${current.name} is a directory user: the password is changed in the directory`,
      );
    return current;
  }

  async login(
    name: string,
    password: string,
    clientAddress: string,
  ): Promise<IssuedToken & { identity: Identity }> {
    // Reserved before anything is verified: logins sent at once are counted at once.
    const attempt = this.limiter.begin([`user:${name}`, `addr:${clientAddress}`]);
    try {
      return await this.#login(name, password, attempt);
    } finally {
      // Neither a failure nor a success (the directory is down, the store failed): nothing counts.
      attempt.release();
    }
  }

  async #login(
    name: string,
    password: string,
    attempt: LoginAttempt,
  ): Promise<IssuedToken & { identity: Identity }> {
    const row = await this.store.db
      .selectFrom('identities')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    // Local accounts never wait on the directory: they log in when it is down.
    if (!row || row.source === 'ldap') {
      if (this.directory) return this.#directoryLogin(name, password, row, attempt);
      if (row)
        throw new ZenithError(
          'ZEN_DIRECTORY_UNAVAILABLE',
          `${name} is a directory user and no directory is configured`,
        );
    }
    // Always pay for one hash so that unknown names and wrong passwords take the same time.
    const ok = await verifyPassword(
      password,
      row?.password_hash ??
        'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    );
    if (!row || !ok || row.disabled === 1 || row.kind !== 'user') {
      attempt.fail();
      throw new ZenithError('ZEN_BAD_CREDENTIALS', 'wrong user name or password');
    }
    attempt.succeed([`user:${name}`]);
    const issued = await this.#issue(
      row.id,
      'session',
      'login',
      this.clock.now() + sessionLifetimeMs,
    );
    return { ...issued, identity: identityOf(row) };
  }

  async #directoryLogin(
    name: string,
    password: string,
    row: IdentitiesTable | undefined,
    attempt: LoginAttempt,
  ): Promise<IssuedToken & { identity: Identity }> {
    // ZEN_DIRECTORY_UNAVAILABLE passes through: it is no failed guess.
    const user = await this.directory!.authenticate(name, password);
    if (!user || row?.disabled === 1 || !namePattern.test(name)) {
      attempt.fail();
      throw new ZenithError('ZEN_BAD_CREDENTIALS', 'wrong user name or password');
    }
    attempt.succeed([`user:${name}`]);
    const identity = row
      ? identityOf(row)
      : await this.#createIdentity({
          name,
          role: 'none',
          kind: 'user',
          displayName: user.displayName,
          passwordHash: null,
          source: 'ldap',
        });
    // Directory attributes mapped to identity attributes follow the directory at every login.
    const mapped = Object.keys(user.attributes).length > 0;
    const current = mapped
      ? await this.update(identity.id, { attributes: user.attributes })
      : identity;
    await this.onDirectoryLogin?.(identity.id, user.groups);
    const issued = await this.#issue(
      identity.id,
      'session',
      'login',
      this.clock.now() + sessionLifetimeMs,
    );
    return { ...issued, identity: current };
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
    const row = await this.store.db
      .selectFrom('tokens')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw new ZenithError('ZEN_NOT_FOUND', `no token ${id}`, { id });
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
    this.sessions.endTokens([id], {
      code: 'ZEN_TOKEN_EXPIRED',
      message: 'the token was revoked; log in again',
    });
    return this.getToken(id);
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
    const endings = await credentialEndings(
      this.store.db,
      this.clock.now(),
      this.sessions.tokenIds(),
    );
    for (const [tokenId, reason] of endings) this.sessions.endTokens([tokenId], reason);
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

  async #assertAnotherAdmin(exceptId: string): Promise<void> {
    const other = await this.store.db
      .selectFrom('identities')
      .select('id')
      .where('role', '=', 'admin')
      .where('disabled', '=', 0)
      .where('id', '!=', exceptId)
      .executeTakeFirst();
    if (!other)
      throw new ZenithError(
        'ZEN_CONFLICT',
        'this is the last enabled administrator; make another one first',
      );
  }

  #evictIdentity(identityId: string): void {
    for (const [tokenId, entry] of this.#cache)
      if (entry.principal.id === identityId) this.#cache.delete(tokenId);
  }
}
