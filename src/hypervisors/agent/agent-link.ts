/**
 * The control channel between the control plane and a host agent: JSON
 * messages over one WebSocket the agent keeps open. The control plane calls
 * driver methods on the agent; the agent answers, and pushes inventory deltas
 * and heartbeats on its own.
 */
import type { Duplex } from 'node:stream';
import type { ActionProgress, ConsoleKind, InventoryDelta } from '../driver.js';

export const agentMethods = [
  'discover',
  'startVm',
  'stopVm',
  'rebootVm',
  'suspendVm',
  'resumeVm',
  'deleteVm',
  'createVm',
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
] as const;
export type AgentMethod = (typeof agentMethods)[number];

export type ToAgent =
  | { type: 'call'; id: number; method: AgentMethod; args: unknown[] }
  | { type: 'console-open'; stream: number; vmId: string; kind: ConsoleKind }
  | { type: 'console-data'; stream: number; data: string }
  | { type: 'console-close'; stream: number };

export type FromAgent =
  | { type: 'result'; id: number; ok: true; value: unknown }
  | {
      type: 'result';
      id: number;
      ok: false;
      error: { code: string; message: string; details: Record<string, unknown> };
    }
  /** Progress of a call still running (clone, snapshot): the driver's context.progress. */
  | { type: 'progress'; id: number; update: ActionProgress }
  | { type: 'delta'; delta: InventoryDelta }
  | { type: 'heartbeat'; facts: Record<string, unknown> }
  /** Console bytes travel base64-encoded; `stream` numbers are chosen by the control plane. */
  | { type: 'console-opened'; stream: number }
  | { type: 'console-data'; stream: number; data: string }
  | { type: 'console-close'; stream: number; error?: { code: string; message: string } };

/** What the control plane offers a driver for one agent. */
export interface AgentLink {
  readonly connected: boolean;
  call(
    method: AgentMethod,
    args: unknown[],
    timeoutMs?: number,
    onProgress?: (update: ActionProgress) => void,
  ): Promise<unknown>;
  /** Deltas from the agent, from the moment of this call, until the signal aborts or the link drops. */
  deltas(signal: AbortSignal): AsyncIterable<InventoryDelta>;
  /** A VM's console, relayed through the channel. */
  openConsole(vmId: string, kind: ConsoleKind): Promise<Duplex>;
}

export function isAgentMethod(value: unknown): value is AgentMethod {
  return typeof value === 'string' && (agentMethods as readonly string[]).includes(value);
}
