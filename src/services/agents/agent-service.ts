/**
 * Host agents: enrolled with a one-time token, then authenticated with a
 * client certificate from Zenith's own CA (the agent's service identity,
 * whose only permission is to report itself). An agent that misses its
 * heartbeats is shown disconnected; a revoked one is cut off at once.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { constantTimeEqualHex, randomSecret, sha256Hex } from '../../core/crypto.js';
import { isId, newId } from '../../core/ids.js';
import { Mutex } from '../../core/mutex.js';
import type { AgentsTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { IdentityService } from '../identity/identity-service.js';
import type { Principal } from '../identity/roles.js';
import type { AgentCertificates, AuthenticatedAgent } from './agent-certificates.js';
import type { IssuedCertificate } from './certificate-authority.js';
import { rowById } from '../../store/rows.js';

export type AgentState = 'connected' | 'disconnected' | 'revoked';

export interface Agent {
  id: string;
  identityId: string;
  hostname: string;
  facts: Record<string, unknown>;
  address: string | null;
  enrolledAt: number;
  lastSeenAt: number | null;
  state: AgentState;
}

/** Agents report every few seconds; three missed heartbeats mean disconnected. */
export const heartbeatIntervalMs = 5_000;
const missedHeartbeats = 3;
const hostnamePattern = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}))*$/;

export class AgentService {
  /** Check and claim in one step: two agents enrolling under one name cannot both pass the check. */
  readonly #enrolling = new Mutex();

  constructor(
    private readonly deps: {
      store: Store;
      identities: IdentityService;
      events: EventBus;
      clock: Clock;
      certificates: AgentCertificates;
      /**
       * Called once an agent is enrolled (the control plane gives it a connection: the one of the
       * agent it replaces, when it enrolled again under that agent's host name).
       */
      onEnrolled: (agent: Agent, replaces: Agent | null) => Promise<void>;
      /**
       * A host of the inventory with this name (any case) that is not one of the agents' being
       * replaced (their connections' hosts): the control plane answers it from the inventory.
       */
      hostNamed: (
        hostname: string,
        replacing: Agent[],
      ) => Promise<{ id: string; name: string } | null>;
    },
  ) {}

  get certificates(): AgentCertificates {
    return this.deps.certificates;
  }

  /** A token an administrator hands to one new agent; valid once, until it expires. */
  async createEnrollmentToken(
    by: Actor,
    ttlMs: number,
  ): Promise<{ id: string; token: string; expiresAt: number }> {
    if (!(ttlMs >= 60_000 && ttlMs <= 7 * 86_400_000))
      throw new ZenithError('ZEN_BAD_REQUEST', 'an enrollment token lives from 1 minute to 7 days');
    const now = this.deps.clock.now();
    const secret = randomSecret(32);
    const id = newId('enrollment', now);
    await this.deps.store.db
      .insertInto('enrollment_tokens')
      .values({
        id,
        secret_hash: sha256Hex(secret),
        created_by: by.id,
        created_at: now,
        expires_at: now + ttlMs,
        used_at: null,
        agent_id: null,
      })
      .execute();
    return { id, token: `${id}.${secret}`, expiresAt: now + ttlMs };
  }

  /**
   * Trades a one-time token and a CSR (the agent's own key pair, made on the host) for a client
   * certificate. A second use of the token fails.
   */
  async enroll(
    presented: string,
    hostname: string,
    address: string | null,
    csr: string,
  ): Promise<{ agent: Agent; certificate: IssuedCertificate; caCertificate: string }> {
    if (!hostnamePattern.test(hostname) || hostname.length > 253)
      throw new ZenithError('ZEN_BAD_REQUEST', `'${hostname}' is not a host name`, { hostname });
    // A bad request must not use the token up: the CSR is checked before the token is claimed.
    await this.deps.certificates.checkRequest(csr);
    const [id = '', secret = ''] = presented.split('.', 2);
    if (!isId(id, 'enrollment'))
      throw new ZenithError('ZEN_UNAUTHENTICATED', 'the enrollment token is malformed');
    const now = this.deps.clock.now();
    const row = await this.deps.store.db
      .selectFrom('enrollment_tokens')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row || !constantTimeEqualHex(row.secret_hash, sha256Hex(secret)))
      throw new ZenithError('ZEN_UNAUTHENTICATED', 'the enrollment token is not valid');
    if (row.used_at !== null)
      throw new ZenithError(
        'ZEN_TOKEN_EXPIRED',
        'this enrollment token was already used; ask an administrator for a new one',
      );
    if (Number(row.expires_at) <= now)
      throw new ZenithError(
        'ZEN_TOKEN_EXPIRED',
        'this enrollment token has expired; ask an administrator for a new one',
      );
    return this.#enrolling.run(async () => {
      // After the token is known good (a stranger learns no host names), before it is used up.
      const replaces = await this.#refuseTakenHostname(hostname);
      return this.#enrollChecked(id, hostname, address, csr, replaces);
    });
  }

  /**
   * Refuses a host name that an agent able to connect, or another host of the inventory (the
   * control plane's own QEMU host, a libvirt host), already has: name-based operations would no
   * longer know which one is meant. Agents that can never connect again (revoked, or whose
   * certificates have all expired) leave their name to the host enrolling again; the newest of them
   * is answered, so that the new agent takes over its connection.
   */
  async #refuseTakenHostname(hostname: string): Promise<Agent | null> {
    const wanted = hostname.toLowerCase();
    const holders = (await this.deps.store.db.selectFrom('agents').selectAll().execute())
      .filter((row) => row.hostname.toLowerCase() === wanted)
      .sort((a, b) => Number(b.enrolled_at) - Number(a.enrolled_at));
    for (const row of holders)
      if (row.revoked_at === null && (await this.deps.certificates.usable(row.id)))
        throw new ZenithError(
          'ZEN_CONFLICT',
          `an enrolled agent has the host name '${row.hostname}'; revoke it first to enroll this host again, or start the agent with another --host-name`,
          { hostname, agentId: row.id },
        );
    const replacing = holders.map((row) => this.#view(row));
    const host = await this.deps.hostNamed(hostname, replacing);
    if (host)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `a host named '${host.name}' is in the inventory already; start the agent with another --host-name`,
        { hostname, hostId: host.id },
      );
    return replacing[0] ?? null;
  }

  async #enrollChecked(
    id: string,
    hostname: string,
    address: string | null,
    csr: string,
    replaces: Agent | null,
  ): Promise<{ agent: Agent; certificate: IssuedCertificate; caCertificate: string }> {
    const now = this.deps.clock.now();
    const agentId = newId('agent', now);
    // Claim the token first: of two agents racing with one token, exactly one wins.
    const claimed = await this.deps.store.db
      .updateTable('enrollment_tokens')
      .set({ used_at: now, agent_id: agentId })
      .where('id', '=', id)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1)
      throw new ZenithError(
        'ZEN_TOKEN_EXPIRED',
        'this enrollment token was already used; ask an administrator for a new one',
      );
    const identity = await this.deps.identities.createServiceIdentity({
      name: `agent-${agentId.slice('agent_'.length).toLowerCase()}`,
      role: 'agent',
      displayName: `agent on ${hostname}`,
    });
    const agentRow: AgentsTable = {
      id: agentId,
      identity_id: identity.id,
      hostname,
      facts: '{}',
      address,
      enrolled_at: now,
      last_seen_at: now,
      revoked_at: null,
    };
    await this.deps.store.db.insertInto('agents').values(agentRow).execute();
    const certificate = await this.deps.certificates.issue(csr, {
      agentId,
      identityId: identity.id,
    });
    await this.deps.events.publish([
      { type: 'agent.enrolled', objectId: agentId, data: { hostname } },
    ]);
    await this.deps.onEnrolled(this.#view(agentRow), replaces);
    return {
      agent: this.#view(agentRow),
      certificate,
      caCertificate: this.deps.certificates.caCertificate,
    };
  }

  /** The agent whose certificate opens a channel (see AgentCertificates.authenticate). */
  async authenticateChannel(
    certificate: string,
    nonce: string,
    signature: string,
  ): Promise<{ agent: Agent; principal: Principal; session: AuthenticatedAgent }> {
    const session = await this.deps.certificates.authenticate(certificate, nonce, signature);
    const row = await this.deps.store.db
      .selectFrom('agents')
      .selectAll()
      .where('id', '=', session.agentId)
      .executeTakeFirst();
    if (!row || row.revoked_at !== null)
      throw new ZenithError('ZEN_CREDENTIAL_REVOKED', 'this agent was revoked', {
        agentId: session.agentId,
      });
    const identity = await this.deps.identities.get(row.identity_id);
    if (identity.disabled)
      throw new ZenithError('ZEN_CREDENTIAL_REVOKED', "this agent's identity is disabled", {
        agentId: session.agentId,
      });
    return {
      agent: this.#view(row),
      principal: {
        id: identity.id,
        kind: identity.kind,
        name: identity.name,
        role: identity.role,
        tokenId: `certificate:${session.serial}`,
      },
      session,
    };
  }

  /** An agent reports itself (with its own credentials). */
  async heartbeat(principal: Principal, facts: Record<string, unknown>): Promise<Agent> {
    const row = await this.deps.store.db
      .selectFrom('agents')
      .selectAll()
      .where('identity_id', '=', principal.id)
      .executeTakeFirst();
    if (!row || row.revoked_at !== null)
      throw new ZenithError(
        'ZEN_FORBIDDEN',
        'these credentials do not belong to an enrolled agent',
      );
    const wasDisconnected = this.#view(row).state === 'disconnected';
    const now = this.deps.clock.now();
    await this.deps.store.db
      .updateTable('agents')
      .set({ last_seen_at: now, facts: JSON.stringify(facts) })
      .where('id', '=', row.id)
      .execute();
    if (wasDisconnected)
      await this.deps.events.publish([
        { type: 'agent.connected', objectId: row.id, data: { hostname: row.hostname } },
      ]);
    return this.#view({ ...row, last_seen_at: now, facts: JSON.stringify(facts) });
  }

  async list(): Promise<Agent[]> {
    return (
      await this.deps.store.db.selectFrom('agents').selectAll().orderBy('hostname').execute()
    ).map((row) => this.#view(row));
  }

  async get(id: string): Promise<Agent> {
    const row = await rowById(this.deps.store.db, 'agents', id, `no agent ${id}`);
    return this.#view(row);
  }

  /**
   * Cuts an agent off: its certificates are revoked (by serial) and its identity disabled, so it
   * can never open its channel again. The caller closes the channel it has open now.
   */
  async revoke(id: string): Promise<Agent> {
    const agent = await this.get(id);
    await this.deps.store.db
      .updateTable('agents')
      .set({ revoked_at: this.deps.clock.now() })
      .where('id', '=', id)
      .execute();
    await this.deps.certificates.revokeAgent(id, 'agent revoked');
    await this.deps.identities.update(agent.identityId, { disabled: true });
    await this.deps.events.publish([
      { type: 'agent.revoked', objectId: id, data: { hostname: agent.hostname } },
    ]);
    return this.get(id);
  }

  #view(row: AgentsTable): Agent {
    const lastSeen = row.last_seen_at === null ? null : Number(row.last_seen_at);
    const fresh =
      lastSeen !== null &&
      this.deps.clock.now() - lastSeen <= heartbeatIntervalMs * missedHeartbeats;
    return {
      id: row.id,
      identityId: row.identity_id,
      hostname: row.hostname,
      facts: JSON.parse(row.facts) as Record<string, unknown>,
      address: row.address,
      enrolledAt: Number(row.enrolled_at),
      lastSeenAt: lastSeen,
      state: row.revoked_at !== null ? 'revoked' : fresh ? 'connected' : 'disconnected',
    };
  }
}
