/**
 * Typed data of the QMP events a driver reacts to (QEMU 7.2, qapi/*.json).
 * Events not listed here still arrive, untyped, with their name and data.
 */

import type { QmpJobStatus, QmpMigrationStatus } from './commands.js';
import type { JsonObject, QmpEventMessage } from './messages.js';

/** qapi/run-state.json ShutdownCause. */
export type QmpShutdownCause =
  | 'none'
  | 'host-error'
  | 'host-qmp-quit'
  | 'host-qmp-system-reset'
  | 'host-signal'
  | 'host-ui'
  | 'guest-shutdown'
  | 'guest-reset'
  | 'guest-panic'
  | 'subsystem-reset'
  | 'snapshot-load';

interface BlockJobProgress {
  type: string;
  device: string;
  len: number;
  offset: number;
  speed: number;
}

type NoData = Record<string, never>;

/** Event name → its data. */
export interface QmpEvents {
  STOP: NoData;
  RESUME: NoData;
  SHUTDOWN: { guest: boolean; reason: QmpShutdownCause };
  POWERDOWN: NoData;
  RESET: { guest: boolean; reason: QmpShutdownCause };
  MIGRATION: { status: QmpMigrationStatus };
  MIGRATION_PASS: { pass: number };
  BLOCK_JOB_COMPLETED: BlockJobProgress & { error?: string };
  BLOCK_JOB_READY: BlockJobProgress;
  BLOCK_JOB_ERROR: {
    device: string;
    operation: 'read' | 'write';
    action: 'ignore' | 'report' | 'stop';
  };
  BLOCK_JOB_CANCELLED: BlockJobProgress;
  JOB_STATUS_CHANGE: { id: string; status: QmpJobStatus };
  /** The guest reported a panic (pvpanic); `action` is what QEMU does (-action panic=…). */
  GUEST_PANICKED: { action: 'pause' | 'poweroff' | 'run' };
}

export type QmpEventName = keyof QmpEvents;

/** An event whose name is known, with its data typed. */
export interface QmpTypedEvent<K extends QmpEventName> extends QmpEventMessage {
  event: K;
  data: QmpEvents[K] & JsonObject;
}

/** Narrows any received event to a known one: `if (isQmpEvent(e, 'MIGRATION')) e.data.status`. */
export function isQmpEvent<K extends QmpEventName>(
  message: QmpEventMessage,
  name: K,
): message is QmpTypedEvent<K> {
  return message.event === name;
}
