/**
 * Identities (people and service identities), their roles, attributes and
 * passwords, and logging in. A password is stored only as its scrypt hash. The
 * credentials an identity then acts with — login sessions, API tokens, what
 * they keep open — are session-service.ts: this service starts a session after
 * a login and tells the sessions when an identity changes, is disabled or gone,
 * or gets a new password.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { hashPassword, randomSecret, verifyPassword } from '../../core/crypto.js';
import { isId, newId } from '../../core/ids.js';
import type { Store } from '../../store/store.js';
import type { IdentitiesTable } from '../../store/schema.js';
import type { Facts } from '../inventory/model.js';
import { checkAttributes } from './binding-conditions.js';
import type { LdapDirectory } from './ldap-directory.js';
import { LoginLimiter, type LoginAttempt } from './login-limiter.js';
import { isRoleName, type Principal, type RoleName } from './roles.js';
import type { IssuedToken, SessionService } from './session-service.js';
import { refuseTakenName } from '../../store/rows.js';

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

const namePattern = /^[a-z][a-z0-9._-]{1,63}$/;
const minPasswordLength = 12;

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
  readonly #directory: LdapDirectory | null;
  readonly #changeFollowers = new Set<(identity: Identity) => void>();
  readonly #directoryLoginFollowers = new Set<
    (identityId: string, directoryGroups: string[]) => Promise<void>
  >();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    /** The credentials identities act with: told of every change that ends or narrows them. */
    private readonly credentials: SessionService,
    options: { directory?: LdapDirectory | null } = {},
  ) {
    this.limiter = new LoginLimiter(clock);
    this.#directory = options.directory ?? null;
  }

  /**
   * Calls `listener` with each identity made or changed (its role or attributes: binding conditions
   * read them). Answers the unsubscribe.
   */
  followChanges(listener: (identity: Identity) => void): () => void {
    this.#changeFollowers.add(listener);
    return () => this.#changeFollowers.delete(listener);
  }

  /**
   * Calls `listener` after each directory login with the user's directory groups (to map them to
   * Zenith groups); the login waits for it. Answers the unsubscribe.
   */
  followDirectoryLogins(
    listener: (identityId: string, directoryGroups: string[]) => Promise<void>,
  ): () => void {
    this.#directoryLoginFollowers.add(listener);
    return () => this.#directoryLoginFollowers.delete(listener);
  }

  #changed(identity: Identity): void {
    for (const listener of this.#changeFollowers) listener(identity);
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
    const token = await this.credentials.createToken(identity.id, 'initial');
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
    await refuseTakenName(
      this.store.db,
      'identities',
      input.name,
      `an identity named '${input.name}' exists`,
    );
    await this.store.db.insertInto('identities').values(row).execute();
    this.#changed(identityOf(row));
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
    this.credentials.forgetIdentity(current.id);
    const updated = await this.get(current.id);
    this.#changed(updated);
    if (changes.disabled === true)
      this.credentials.live.endIdentity(current.id, {
        code: 'ZEN_UNAUTHENTICATED',
        message: 'this identity is disabled',
      });
    else if (changes.role !== undefined || attributes !== undefined)
      this.credentials.live.identityChanged(current.id, updated.role);
    return updated;
  }

  async remove(id: string): Promise<Identity> {
    const current = await this.get(id);
    if (current.role === 'admin') await this.#assertAnotherAdmin(current.id);
    await this.store.db.deleteFrom('identities').where('id', '=', current.id).execute();
    this.credentials.forgetIdentity(current.id);
    this.credentials.live.endIdentity(current.id, {
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
    // Whoever knew the old password is logged out: every session but the one changing it, every API token.
    await this.credentials.revokeAllOf(
      current.id,
      { code: 'ZEN_TOKEN_EXPIRED', message: 'the password was changed; log in again' },
      { keepSessionId: options.keepSessionId },
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
      if (this.#directory) return this.#directoryLogin(name, password, row, attempt);
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
    const issued = await this.credentials.startSession(row.id);
    return { ...issued, identity: identityOf(row) };
  }

  async #directoryLogin(
    name: string,
    password: string,
    row: IdentitiesTable | undefined,
    attempt: LoginAttempt,
  ): Promise<IssuedToken & { identity: Identity }> {
    // ZEN_DIRECTORY_UNAVAILABLE passes through: it is no failed guess.
    const user = await this.#directory!.authenticate(name, password);
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
    for (const listener of this.#directoryLoginFollowers) await listener(identity.id, user.groups);
    const issued = await this.credentials.startSession(identity.id);
    return { ...issued, identity: current };
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
}
