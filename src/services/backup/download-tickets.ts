/**
 * Downloads of a backed-up disk by a plain GET (a browser saving a file sends no bearer token): an
 * authorized user asks for a single-use ticket for one disk and format, and the ticket, in the
 * path, is the credential for one download within a minute. As a console ticket, it remembers whom
 * it was issued to and under which token: a token revoked since, or a permission withdrawn, ends it.
 * Only its SHA-256 is kept.
 */
import type { DiskImageFormat, DownloadTicket } from '../../api/backups.js';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { Actor } from '../audit/audit-service.js';
import type { AccessService } from '../identity/access-service.js';
import type { Principal } from '../identity/roles.js';
import type { SessionService } from '../identity/session-service.js';
import { SingleUseTickets } from '../identity/single-use-tickets.js';
import type { BackupService } from './backup-service.js';

const ticketLifetimeMs = 60_000;

interface Ticket {
  backupId: string;
  diskId: string;
  format: DiskImageFormat;
}

export class DownloadTickets {
  readonly #tickets: SingleUseTickets<Ticket>;

  constructor(
    private readonly deps: {
      backups: BackupService;
      access: AccessService;
      sessions: SessionService;
      clock: Clock;
    },
  ) {
    this.#tickets = new SingleUseTickets(deps, { lifetimeMs: ticketLifetimeMs, what: 'download' });
  }

  /** A ticket for one disk of a backup the principal may restore (checked by the caller's route). */
  async issue(
    backupId: string,
    diskId: string,
    format: DiskImageFormat,
    principal: Principal,
  ): Promise<DownloadTicket> {
    // What a download of it would answer, found now: a damaged backup or a missing disk is told at once.
    const backup = await this.deps.backups.get(backupId);
    const { fileName, sizeBytes } = await this.deps.backups.download(backup.id, diskId, format);
    const { ticket, expiresAt } = this.#tickets.issue(
      { backupId: backup.id, diskId, format },
      principal,
    );
    return { ticket, path: `/api/v1/downloads/${ticket}`, expiresAt, fileName, sizeBytes };
  }

  /**
   * Consumes a ticket: what it was issued for and for whom (ZEN_UNAUTHENTICATED when unknown, used
   * or expired; the token's end, or ZEN_FORBIDDEN when the permission is gone).
   */
  async redeem(
    ticket: string,
  ): Promise<{ backupId: string; diskId: string; format: DiskImageFormat; actor: Actor }> {
    const { value: found, principal } = await this.#tickets.redeem(ticket);
    const backup = await this.deps.backups.get(found.backupId);
    if (!this.deps.access.decide(principal, 'backup.restore', backup.vmId).allowed)
      throw new ZenithError(
        'ZEN_FORBIDDEN',
        `${principal.name} may no longer download backups of ${backup.vmName}`,
        { permission: 'backup.restore' },
      );
    return {
      backupId: found.backupId,
      diskId: found.diskId,
      format: found.format,
      actor: { id: principal.id, kind: principal.kind, name: principal.name },
    };
  }
}
