/**
 * The client certificates of host agents: issued at enrollment and renewal,
 * kept by serial, revoked with the agent (or when a renewal has taken over),
 * and checked when an agent opens its channel: the certificate must be this
 * CA's, within its validity, not revoked, and the agent must sign the
 * channel's one-time nonce with the certificate's key.
 */
import { randomBytes, verify } from 'node:crypto';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { AgentCertificatesTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { CertificateAuthority, IssuedCertificate } from './certificate-authority.js';

/** The default life of an agent certificate; renewed when two thirds of it have passed. */
export const defaultCertificateValidityMs = 30 * 86_400_000;
export const renewalFraction = 2 / 3;

/** The text an agent signs: the nonce, bound to its purpose. */
export function channelProof(nonce: string): Buffer {
  return Buffer.from(`zenith-agent-channel:v1:${nonce}`, 'utf8');
}

export function newNonce(): string {
  return randomBytes(32).toString('base64url');
}

export interface AgentCertificateView {
  serial: string;
  agentId: string;
  notBefore: number;
  notAfter: number;
  issuedAt: number;
  replaces: string | null;
  revokedAt: number | null;
  revokedReason: string | null;
}

export interface AuthenticatedAgent {
  agentId: string;
  identityId: string;
  serial: string;
  notBefore: number;
  notAfter: number;
  /** When the agent should renew, from now (by this control plane's clock). */
  renewInMs: number;
}

export class AgentCertificates {
  constructor(
    private readonly deps: {
      store: Store;
      clock: Clock;
      ca: CertificateAuthority;
      validityMs: number;
    },
  ) {}

  get caCertificate(): string {
    return this.deps.ca.certificatePem;
  }

  async issue(
    csr: string,
    subject: { agentId: string; identityId: string },
    replaces: string | null = null,
  ): Promise<IssuedCertificate> {
    const issued = await this.deps.ca.issue(csr, { ...subject, validityMs: this.deps.validityMs });
    await this.deps.store.db
      .insertInto('agent_certificates')
      .values({
        serial: issued.serial,
        agent_id: subject.agentId,
        identity_id: subject.identityId,
        not_before: issued.notBefore,
        not_after: issued.notAfter,
        issued_at: this.deps.clock.now(),
        replaces,
        first_used_at: null,
        revoked_at: null,
        revoked_reason: null,
      })
      .execute();
    return issued;
  }

  async checkRequest(csr: string): Promise<void> {
    await this.deps.ca.checkRequest(csr);
  }

  renewInMs(notBefore: number, notAfter: number): number {
    const renewAt = notBefore + (notAfter - notBefore) * renewalFraction;
    return Math.max(0, Math.round(renewAt - this.deps.clock.now()));
  }

  /**
   * Checks a channel's proof: the certificate and the agent's signature over the nonce. A renewed
   * certificate used for the first time retires the one it replaces.
   */
  async authenticate(
    certificatePem: string,
    nonce: string,
    signatureBase64: string,
  ): Promise<AuthenticatedAgent> {
    const facts = this.deps.ca.inspect(certificatePem);
    const row = await this.deps.store.db
      .selectFrom('agent_certificates')
      .selectAll()
      .where('serial', '=', facts.serial)
      .executeTakeFirst();
    if (!row || row.agent_id !== facts.agentId)
      throw new ZenithError('ZEN_CERTIFICATE_INVALID', 'this certificate was never issued', {
        serial: facts.serial,
      });
    if (row.revoked_at !== null)
      throw new ZenithError(
        'ZEN_CREDENTIAL_REVOKED',
        `certificate ${row.serial} was revoked (${row.revoked_reason ?? 'revoked'})`,
        { serial: row.serial, reason: row.revoked_reason },
      );
    const now = this.deps.clock.now();
    if (now >= Number(row.not_after))
      throw new ZenithError(
        'ZEN_CERTIFICATE_EXPIRED',
        `certificate ${row.serial} expired at ${new Date(Number(row.not_after)).toISOString()}`,
        { serial: row.serial, notAfter: Number(row.not_after) },
      );
    if (now < Number(row.not_before))
      throw new ZenithError(
        'ZEN_CERTIFICATE_INVALID',
        `certificate ${row.serial} is not valid yet`,
        {
          serial: row.serial,
        },
      );
    let signed: boolean;
    try {
      signed = verify(
        'sha256',
        channelProof(nonce),
        facts.publicKey,
        Buffer.from(signatureBase64, 'base64'),
      );
    } catch {
      signed = false;
    }
    if (!signed)
      throw new ZenithError(
        'ZEN_CERTIFICATE_INVALID',
        "the agent did not prove it holds its certificate's key",
        { serial: row.serial },
      );
    if (row.first_used_at === null) await this.activate(row.serial);
    return {
      agentId: row.agent_id,
      identityId: row.identity_id,
      serial: row.serial,
      notBefore: Number(row.not_before),
      notAfter: Number(row.not_after),
      renewInMs: this.renewInMs(Number(row.not_before), Number(row.not_after)),
    };
  }

  /** A renewed certificate is in use (the agent stored it, or opened a channel with it): the one it replaces is revoked. */
  async activate(serial: string): Promise<void> {
    const row = await this.#row(serial);
    if (row.first_used_at === null)
      await this.deps.store.db
        .updateTable('agent_certificates')
        .set({ first_used_at: this.deps.clock.now() })
        .where('serial', '=', serial)
        .execute();
    if (row.replaces !== null) await this.revoke(row.replaces, 'superseded');
  }

  /** A certificate may be renewed only while it is still good: the caller has just authenticated with it. */
  async renew(serial: string, csr: string): Promise<IssuedCertificate> {
    const row = await this.#row(serial);
    if (row.revoked_at !== null)
      throw new ZenithError('ZEN_CREDENTIAL_REVOKED', `certificate ${serial} was revoked`);
    if (this.deps.clock.now() >= Number(row.not_after))
      throw new ZenithError('ZEN_CERTIFICATE_EXPIRED', `certificate ${serial} has expired`);
    return this.issue(csr, { agentId: row.agent_id, identityId: row.identity_id }, serial);
  }

  async revoke(serial: string, reason: string): Promise<void> {
    await this.deps.store.db
      .updateTable('agent_certificates')
      .set({ revoked_at: this.deps.clock.now(), revoked_reason: reason })
      .where('serial', '=', serial)
      .where('revoked_at', 'is', null)
      .execute();
  }

  async revokeAgent(agentId: string, reason: string): Promise<void> {
    await this.deps.store.db
      .updateTable('agent_certificates')
      .set({ revoked_at: this.deps.clock.now(), revoked_reason: reason })
      .where('agent_id', '=', agentId)
      .where('revoked_at', 'is', null)
      .execute();
  }

  /** Can the agent still open its channel: does it hold a certificate neither revoked nor expired? */
  async usable(agentId: string): Promise<boolean> {
    const row = await this.deps.store.db
      .selectFrom('agent_certificates')
      .select('serial')
      .where('agent_id', '=', agentId)
      .where('revoked_at', 'is', null)
      .where('not_after', '>', this.deps.clock.now())
      .executeTakeFirst();
    return row !== undefined;
  }

  async list(agentId: string): Promise<AgentCertificateView[]> {
    const rows = await this.deps.store.db
      .selectFrom('agent_certificates')
      .selectAll()
      .where('agent_id', '=', agentId)
      .orderBy('issued_at')
      .orderBy('serial')
      .execute();
    return rows.map(viewOf);
  }

  async #row(serial: string): Promise<AgentCertificatesTable> {
    const row = await this.deps.store.db
      .selectFrom('agent_certificates')
      .selectAll()
      .where('serial', '=', serial)
      .executeTakeFirst();
    if (!row) throw new ZenithError('ZEN_NOT_FOUND', `no certificate ${serial}`, { serial });
    return row;
  }
}

function viewOf(row: AgentCertificatesTable): AgentCertificateView {
  const n = (v: number | null) => (v === null ? null : Number(v));
  return {
    serial: row.serial,
    agentId: row.agent_id,
    notBefore: Number(row.not_before),
    notAfter: Number(row.not_after),
    issuedAt: Number(row.issued_at),
    replaces: row.replaces,
    revokedAt: n(row.revoked_at),
    revokedReason: row.revoked_reason,
  };
}
