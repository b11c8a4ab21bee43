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
import type { ConsoleKind } from '../../hypervisors/driver.js';
import type { Actor, AuditService } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { SessionService } from '../identity/session-service.js';
import { SingleUseTickets } from '../identity/single-use-tickets.js';
import type { Principal } from '../identity/roles.js';
import type { InventoryService } from '../inventory/inventory-service.js';

const ticketLifetimeMs = 30_000;

interface Ticket {
  vmId: string;
  kind: ConsoleKind;
}

/** A console opened with a ticket: its bytes, and for whom and on which VM it was opened. */
export interface OpenedConsole {
  stream: Duplex;
  vmId: string;
  vmName: string;
  principal: Principal;
}

export class ConsoleService {
  readonly #tickets: SingleUseTickets<Ticket>;

  constructor(
    private readonly deps: {
      inventory: InventoryService;
      connections: ConnectionService;
      audit: AuditService;
      sessions: SessionService;
      clock: Clock;
    },
  ) {
    this.#tickets = new SingleUseTickets(deps, { lifetimeMs: ticketLifetimeMs, what: 'console' });
  }

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
    const { ticket, expiresAt } = this.#tickets.issue({ vmId: vm.id, kind }, principal);
    return { ticket, path: `/api/v1/consoles/${ticket}`, expiresAt };
  }

  /** Consumes a ticket and opens the console it was issued for. */
  async redeem(ticket: string, requestId: string): Promise<OpenedConsole> {
    const { value: found, principal } = await this.#tickets.redeem(ticket);
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
}
