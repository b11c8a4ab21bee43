/**
 * Single-use tickets: a short-lived secret an authorized user asks for with their token, which then
 * stands in for the token once where a token cannot be sent (a WebSocket a browser opens, a file a
 * browser saves). A ticket remembers what it was issued for, whom to and under which token: it is
 * refused when unknown, used or expired (ZEN_UNAUTHENTICATED), and when that token has ended since
 * (logged out, revoked, its identity disabled). Only the ticket's SHA-256 is kept.
 */
import type { Clock } from '../../core/clock.js';
import { randomSecret, sha256Hex } from '../../core/crypto.js';
import { ZenithError } from '../../core/errors.js';
import type { Principal } from './roles.js';
import type { SessionService } from './session-service.js';

interface Ticket<T> {
  value: T;
  principal: Principal;
  expiresAt: number;
}

export class SingleUseTickets<T> {
  readonly #tickets = new Map<string, Ticket<T>>();

  constructor(
    private readonly deps: { sessions: SessionService; clock: Clock },
    private readonly options: {
      lifetimeMs: number;
      /** What the tickets open, for the refusal's message ("console", "download"). */
      what: string;
    },
  ) {}

  issue(value: T, principal: Principal): { ticket: string; expiresAt: number } {
    const now = this.deps.clock.now();
    for (const [key, ticket] of this.#tickets)
      if (ticket.expiresAt <= now) this.#tickets.delete(key);
    const ticket = randomSecret(24);
    const expiresAt = now + this.options.lifetimeMs;
    this.#tickets.set(sha256Hex(ticket), { value, principal, expiresAt });
    return { ticket, expiresAt };
  }

  /** Consumes a ticket: what it was issued for and for whom. */
  async redeem(ticket: string): Promise<{ value: T; principal: Principal }> {
    const key = sha256Hex(ticket);
    const found = this.#tickets.get(key);
    this.#tickets.delete(key);
    if (!found || found.expiresAt <= this.deps.clock.now())
      throw new ZenithError(
        'ZEN_UNAUTHENTICATED',
        `the ${this.options.what} ticket is unknown, used or expired; ask for a new one`,
      );
    // The token it was issued under may have been revoked (or its identity disabled) since.
    const ending = await this.deps.sessions.tokenEnding(found.principal.tokenId);
    if (ending) throw new ZenithError(ending.code, ending.message);
    return { value: found.value, principal: found.principal };
  }
}
