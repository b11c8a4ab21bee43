/**
 * When a VM may change connections. A VM keeps its identity across hosts by
 * its UUID, so that a migration between connections continues its history
 * instead of starting a new VM. But anyone who runs an agent can report a VM
 * with any UUID (UUIDs are readable facts): a VM therefore moves to another
 * connection only while the control plane itself moves it there — a migration
 * it runs (later: a failover or a conversion). Any other connection reporting
 * the same UUID is a second claimant, shown to operators as a conflict.
 */
import type { Clock } from '../../core/clock.js';

export class VmHandovers {
  /** vm id → connection id → until when (Infinity while a running migration holds it). */
  readonly #expected = new Map<string, Map<string, number>>();

  constructor(private readonly clock: Clock) {}

  /** A move the control plane runs may bring the VM to `connectionId`; the answer ends it. */
  hold(vmId: string, connectionId: string): () => void {
    this.#disowned.get(vmId)?.delete(connectionId);
    this.#set(vmId, connectionId, Infinity);
    return () => this.#clear(vmId, connectionId);
  }

  /**
   * After a restart, a move that was under way may still land: its destination may report the
   * VM until `until` (the task's own recovery settles it meanwhile).
   */
  allowUntil(vmId: string, connectionId: string, until: number): void {
    const current = this.#expected.get(vmId)?.get(connectionId) ?? 0;
    if (until > current) this.#set(vmId, connectionId, until);
  }

  /** May the VM's identity move to this connection now? */
  isExpected(vmId: string, connectionId: string): boolean {
    const until = this.#expected.get(vmId)?.get(connectionId);
    if (until === undefined) return false;
    if (until > this.clock.now()) return true;
    this.#clear(vmId, connectionId);
    return false;
  }

  /** Is a move of the VM under way (to any connection)? */
  isMoving(vmId: string): boolean {
    const byConnection = this.#expected.get(vmId);
    if (!byConnection) return false;
    return [...byConnection.keys()].some((connectionId) => this.isExpected(vmId, connectionId));
  }

  /** vm id → connections it left for good (a host it failed over away from). */
  readonly #disowned = new Map<string, Set<string>>();

  /**
   * The VM left that connection for good (high availability restarted it elsewhere): what that
   * host still reports of it when it comes back — a stale definition — is neither the VM nor a
   * second one, and is left out.
   */
  disown(vmId: string, connectionId: string): void {
    // What that connection was allowed before (a start there whose answer was lost, a move under
    // way when the control plane restarted) ends with it: it is not where the VM is.
    this.#clear(vmId, connectionId);
    let connections = this.#disowned.get(vmId);
    if (!connections) this.#disowned.set(vmId, (connections = new Set()));
    connections.add(connectionId);
  }

  /** Does the connection report a VM that left it for good? */
  isDisowned(vmId: string, connectionId: string): boolean {
    return this.#disowned.get(vmId)?.has(connectionId) === true;
  }

  #set(vmId: string, connectionId: string, until: number): void {
    let byConnection = this.#expected.get(vmId);
    if (!byConnection) this.#expected.set(vmId, (byConnection = new Map<string, number>()));
    byConnection.set(connectionId, until);
  }

  #clear(vmId: string, connectionId: string): void {
    const byConnection = this.#expected.get(vmId);
    byConnection?.delete(connectionId);
    if (byConnection?.size === 0) this.#expected.delete(vmId);
  }
}
