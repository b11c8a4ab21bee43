/**
 * Consoles through the control plane. An authorized user asks for a ticket
 * (short-lived, single-use, bound to one VM and one console kind); the
 * WebSocket that presents it is relayed to the VM's serial console or VNC
 * server. The ticket, not a session cookie, authorizes the socket, so a
 * console URL that leaks is worthless after its first use or 30 seconds.
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { randomSecret, sha256Hex } from '../../core/crypto.js';
import type { ConsoleKind } from '../../hypervisors/driver.js';
import type { Actor, AuditService } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';

const ticketLifetimeMs = 30_000;

interface Ticket {
  vmId: string;
  kind: ConsoleKind;
  actor: Actor;
  expiresAt: number;
}

export class ConsoleService {
  /** By the SHA-256 of the ticket: the secret itself is never kept. */
  readonly #tickets = new Map<string, Ticket>();

  constructor(
    private readonly deps: {
      inventory: InventoryService;
      connections: ConnectionService;
      audit: AuditService;
      clock: Clock;
    },
  ) {}

  issue(
    vmId: string,
    kind: ConsoleKind,
    actor: Actor,
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
    this.#tickets.set(sha256Hex(ticket), { vmId: vm.id, kind, actor, expiresAt });
    return { ticket, path: `/api/v1/consoles/${ticket}`, expiresAt };
  }

  /** Consumes a ticket and opens the console it was issued for. */
  async redeem(ticket: string, requestId: string): Promise<{ stream: Duplex; vmName: string }> {
    const key = sha256Hex(ticket);
    const found = this.#tickets.get(key);
    this.#tickets.delete(key);
    if (!found || found.expiresAt <= this.deps.clock.now())
      throw new ZenithError(
        'ZEN_UNAUTHENTICATED',
        'the console ticket is unknown, used or expired; ask for a new one',
      );
    const vm = this.deps.inventory.get(found.vmId);
    const driver = this.deps.connections.driver(vm.connectionId!);
    const stream = await driver.openConsole!(vm.externalId!, found.kind);
    await this.deps.audit.append([
      {
        actor: found.actor,
        action: `vm.console.${found.kind}`,
        targetId: vm.id,
        result: 'succeeded',
        requestId,
      },
    ]);
    return { stream, vmName: vm.name };
  }

  #prune(): void {
    const now = this.deps.clock.now();
    for (const [key, ticket] of this.#tickets)
      if (ticket.expiresAt <= now) this.#tickets.delete(key);
  }
}
