/**
 * The control channel between the control plane and a host agent: JSON
 * messages over one WebSocket the agent keeps open. The control plane calls
 * driver methods on the agent; the agent answers, and pushes inventory deltas
 * and heartbeats on its own.
 */
import type { Duplex } from 'node:stream';
import type {
  ActionContext,
  ActionProgress,
  ConsoleKind,
  InventoryDelta,
  VmMetrics,
} from '../driver.js';

export const agentMethods = [
  'discover',
  'startVm',
  'stopVm',
  'rebootVm',
  'resetVm',
  'suspendVm',
  'resumeVm',
  'deleteVm',
  'createVm',
  'checkNewVm',
  'cloneVm',
  'listSnapshots',
  'createSnapshot',
  'revertSnapshot',
  'deleteSnapshot',
  // live migration between two agents, orchestrated by the control plane
  'exportVm',
  'prepareIncoming',
  'sendMigration',
  'finishIncoming',
  'cleanupOutgoing',
  'abortIncoming',
  'incomingState',
  'outgoingState',
] as const;
export type AgentMethod = (typeof agentMethods)[number];

export type ToAgent =
  | { type: 'call'; id: number; method: AgentMethod; args: unknown[] }
  /** The caller gave up (a cancelled task): the agent aborts the call's work. */
  | { type: 'cancel'; id: number }
  | { type: 'console-open'; stream: number; vmId: string; kind: ConsoleKind }
  | { type: 'console-data'; stream: number; data: string }
  | { type: 'console-close'; stream: number }
  /** A renewed certificate (the answer to `renew`); the agent keeps it, then says `switched`. */
  | { type: 'renewed'; certificate: string; notAfter: number; renewInMs: number }
  | { type: 'renew-failed'; error: { code: string; message: string } };

/**
 * The handshake that opens a channel: the control plane sends a one-time nonce, the agent answers
 * with its certificate and its signature over the nonce, and is welcomed or refused.
 */
export type ChannelHandshake =
  | { type: 'challenge'; nonce: string }
  | { type: 'hello'; certificate: string; signature: string }
  | { type: 'welcome'; agentId: string; serial: string; notAfter: number; renewInMs: number }
  | { type: 'refused'; error: { code: string; message: string } };

export type FromAgent =
  | { type: 'result'; id: number; ok: true; value: unknown }
  | {
      type: 'result';
      id: number;
      ok: false;
      error: { code: string; message: string; details: Record<string, unknown> };
    }
  | { type: 'delta'; delta: InventoryDelta }
  /** Progress of a long call (a migration), routed to the task that made it. */
  | { type: 'progress'; id: number; update: ActionProgress }
  | { type: 'heartbeat'; facts: Record<string, unknown>; metrics?: Record<string, VmMetrics> }
  /** Console bytes travel base64-encoded; `stream` numbers are chosen by the control plane. */
  | { type: 'console-opened'; stream: number }
  | { type: 'console-data'; stream: number; data: string }
  | { type: 'console-close'; stream: number; error?: { code: string; message: string } }
  /** A certificate signing request for a new key pair, before the current certificate expires. */
  | { type: 'renew'; csr: string }
  /** The renewed certificate is stored: the control plane revokes the one it replaces. */
  | { type: 'switched' };

/** What the control plane offers a driver for one agent. */
export interface AgentLink {
  readonly connected: boolean;
  /** A driver call; with a context, the agent's progress reaches it and its signal cancels the call. */
  call(
    method: AgentMethod,
    args: unknown[],
    options?: { timeoutMs?: number; context?: ActionContext },
  ): Promise<unknown>;
  /** The latest per-VM metrics the agent reported (by the VM's id on the agent). */
  metrics(vmId: string): VmMetrics | undefined;
  /** Deltas from the agent, from the moment of this call, until the signal aborts or the link drops. */
  deltas(signal: AbortSignal): AsyncIterable<InventoryDelta>;
  /** A VM's console, relayed through the channel. */
  openConsole(vmId: string, kind: ConsoleKind): Promise<Duplex>;
}

export function isAgentMethod(value: unknown): value is AgentMethod {
  return typeof value === 'string' && (agentMethods as readonly string[]).includes(value);
}
