/**
 * Login against an LDAP server or Active Directory: bind as the service
 * account, find the user's entry, bind as the user with the password given,
 * then read the groups that name the user as a member.
 */
import { Client, InvalidCredentialsError } from 'ldapts';
import { ZenithError } from '../../core/errors.js';

export interface LdapSettings {
  /** ldap://host:port or ldaps://host:port */
  url: string;
  bindDn: string;
  bindPassword: string;
  userBase: string;
  /** `{username}` is replaced (escaped); AD: (sAMAccountName={username}) */
  userFilter?: string;
  groupBase: string;
  /** `{dn}` is replaced (escaped) by the user's DN. */
  groupFilter?: string;
  /** The attribute naming a group (cn). */
  groupNameAttribute?: string;
  /** Directory group name → Zenith group name. Groups not listed are ignored. */
  groupMap: Record<string, string>;
  /**
   * Directory attribute → identity attribute (e.g. departmentNumber → department), copied at every
   * login; binding conditions read them as subject.department. An attribute the entry lacks is removed.
   */
  attributeMap?: Record<string, string>;
  timeoutMs?: number;
}

export interface DirectoryUser {
  dn: string;
  displayName: string | null;
  /** Directory group names the user belongs to. */
  groups: string[];
  /** The mapped attributes (identity attribute → value; null: the entry has none). */
  attributes: Record<string, string | string[] | null>;
}

/** RFC 4515 escaping for a value inside a search filter. */
export function escapeFilterValue(value: string): string {
  return value.replace(/[\\*()\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * The filter with `placeholder` replaced by the escaped value, every occurrence. A function replacer:
 * with a string one, `$'`, `` $` `` and `$&` in the value would be read as replacement patterns and
 * splice pieces of the filter back in, undoing the escaping.
 */
export function fillFilter(template: string, placeholder: string, value: string): string {
  const escaped = escapeFilterValue(value);
  return template.replaceAll(placeholder, () => escaped);
}

export class LdapDirectory {
  constructor(readonly settings: LdapSettings) {}

  /** The user, when the password is right; null when the user is unknown or the password wrong. */
  async authenticate(username: string, password: string): Promise<DirectoryUser | null> {
    // An empty password would be an anonymous bind, which "succeeds": never accept it.
    if (password === '') return null;
    const s = this.settings;
    const timeout = s.timeoutMs ?? 5_000;
    const client = new Client({ url: s.url, timeout, connectTimeout: timeout });
    try {
      await this.#reach(() => client.bind(s.bindDn, s.bindPassword));
      const filter = fillFilter(s.userFilter ?? '(uid={username})', '{username}', username);
      const { searchEntries } = await this.#reach(() =>
        client.search(s.userBase, {
          scope: 'sub',
          filter,
          attributes: ['cn', 'displayName', ...Object.keys(s.attributeMap ?? {})],
        }),
      );
      if (searchEntries.length !== 1) return null;
      const entry = searchEntries[0]!;
      try {
        await client.bind(entry.dn, password);
      } catch (error) {
        if (error instanceof InvalidCredentialsError) return null;
        throw unavailable(error);
      }
      await this.#reach(() => client.bind(s.bindDn, s.bindPassword));
      const nameAttribute = s.groupNameAttribute ?? 'cn';
      const groupFilter = fillFilter(s.groupFilter ?? '(member={dn})', '{dn}', entry.dn);
      const groups = await this.#reach(() =>
        client.search(s.groupBase, {
          scope: 'sub',
          filter: groupFilter,
          attributes: [nameAttribute],
        }),
      );
      const display = entry.displayName ?? entry.cn;
      const attributes: DirectoryUser['attributes'] = {};
      for (const [from, to] of Object.entries(s.attributeMap ?? {})) {
        const value = entry[from];
        // ldapts answers an attribute the entry lacks as an empty list.
        attributes[to] =
          typeof value === 'string'
            ? value
            : Array.isArray(value) && value.length > 0
              ? value.length === 1
                ? String(value[0])
                : value.map(String)
              : null;
      }
      return {
        dn: entry.dn,
        attributes,
        displayName: typeof display === 'string' ? display : null,
        groups: groups.searchEntries.flatMap((g) => {
          const name = g[nameAttribute];
          return typeof name === 'string' ? [name] : Array.isArray(name) ? name.map(String) : [];
        }),
      };
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  async #reach<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw unavailable(error);
    }
  }
}

function unavailable(error: unknown): ZenithError {
  // The cause stays out of the message shown to users; operators find it in details.
  return new ZenithError(
    'ZEN_DIRECTORY_UNAVAILABLE',
    'the directory (LDAP) cannot be reached; directory users cannot log in now, local accounts can',
    { cause: error instanceof Error ? error.message : String(error) },
  );
}
