/**
 * Consoles through the control plane. An authorized user asks for a ticket
 * (short-lived, single-use, bound to one VM and one console kind); the
 * WebSocket that presents it is relayed to the VM's serial console or VNC
 * server. The ticket, not a session cookie, authorizes the socket, so a
 * console URL that leaks is worthless after its first use or 30 seconds.
 * The ticket remembers who it was issued to and under which token: a console is not opened for a
 * token that has ended since, and an open one is a live session of that token
 * (identity/live-sessions.ts, registered by the console route).
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { randomSecret, sha256Hex } from '../../core/crypto.js';
import type { ConsoleKind } from '../../hypervisors/driver.js';
import type { Actor, AuditService } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { SessionService } from '../identity/session-service.js';
import type { Principal } from '../identity/roles.js';
import type { InventoryService } from '../inventory/inventory-service.js';

const ticketLifetimeMs = 30_000;

interface Ticket {
  vmId: string;
  kind: ConsoleKind;
  principal: Principal;
  expiresAt: number;
}

/** A console opened with a ticket: its bytes, and for whom and on which VM it was opened. */
export interface OpenedConsole {
  stream: Duplex;
  vmId: string;
  vmName: string;
  principal: Principal;
}

export class ConsoleService {
  /** By the SHA-256 of the ticket: the secret itself is never kept. */
  readonly #tickets = new Map<string, Ticket>();

  constructor(
    private readonly deps: {
      inventory: InventoryService;
      connections: ConnectionService;
      audit: AuditService;
      sessions: SessionService;
      clock: Clock;
    },
  ) {}

  issue(
    vmId: string,
    kind: ConsoleKind,
    principal: Principal,
  ): { ticket: string; path: string; expiresAt: number } {
    const vm = this.deps.inventory.get(vmId);
    if (vm.kind !== 'vm') throw new ZenithError('ZEN_NOT_FOUND', `${vmId} is not a VM`);
    const driver = this.deps.connections.driver(vm.connectionId!);
    if (!driver.info.capabilities.includes('vm.console') || !driver.openConsole) {
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${driver.info.type} connections do not offer consoles`,
        { capability: 'vm.console' },
      );
    }
    if (vm.facts['power.state'] === 'stopped')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.name} is stopped; start it to reach its console`,
      );
    this.#prune();
    const ticket = randomSecret(24);
    const expiresAt = this.deps.clock.now() + ticketLifetimeMs;
    this.#tickets.set(sha256Hex(ticket), { vmId: vm.id, kind, principal, expiresAt });
    return { ticket, path: `/api/v1/consoles/${ticket}`, expiresAt };
  }

  /** Consumes a ticket and opens the console it was issued for. */
  async redeem(ticket: string, requestId: string): Promise<OpenedConsole> {
    const key = sha256Hex(ticket);
    const found = this.#tickets.get(key);
    this.#tickets.delete(key);
    if (!found || found.expiresAt <= this.deps.clock.now())
      throw new ZenithError(
        'ZEN_UNAUTHENTICATED',
        'the console ticket is unknown, used or expired; ask for a new one',
      );
    // The token it was issued under may have been revoked (or its identity disabled) since.
    const ending = await this.deps.sessions.tokenEnding(found.principal.tokenId);
    if (ending) throw new ZenithError(ending.code, ending.message);
    const { principal } = found;
    const actor: Actor = { id: principal.id, kind: principal.kind, name: principal.name };
    const vm = this.deps.inventory.get(found.vmId);
    const driver = this.deps.connections.driver(vm.connectionId!);
    const stream = await driver.openConsole!(vm.externalId!, found.kind);
    await this.deps.audit.append([
      {
        actor,
        action: `vm.console.${found.kind}`,
        targetId: vm.id,
        result: 'succeeded',
        requestId,
      },
    ]);
    return { stream, vmId: vm.id, vmName: vm.name, principal };
  }

  #prune(): void {
    const now = this.deps.clock.now();
    for (const [key, ticket] of this.#tickets)
      if (ticket.expiresAt <= now) this.#tickets.delete(key);
  }
}
