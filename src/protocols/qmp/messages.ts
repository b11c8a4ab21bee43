/**
 * The four kinds of message a QMP server sends, and the command a client sends.
 * Shapes follow QEMU's docs/interop/qmp-spec (one JSON object per line).
 */

export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** When QEMU emitted an event (its own clock, host time). */
export interface QmpTimestamp {
  seconds: number;
  microseconds: number;
}

/** The first message on every connection: `{"QMP": {"version": ..., "capabilities": [...]}}`. */
export interface QmpGreeting {
  kind: 'greeting';
  version: {
    qemu: { major: number; minor: number; micro: number };
    package: string;
  };
  /** Capabilities the server offers, e.g. `oob`. */
  capabilities: string[];
}

/** A successful reply: `{"return": ..., "id": ...}`. */
export interface QmpReturn {
  kind: 'return';
  value: JsonValue;
  /** The id the command carried; undefined when the command had none. */
  id: JsonValue | undefined;
}

/** A failed command: `{"error": {"class": ..., "desc": ...}, "id": ...}`. */
export interface QmpErrorReply {
  kind: 'error';
  errorClass: string;
  desc: string;
  id: JsonValue | undefined;
}

/** An asynchronous event: `{"event": NAME, "data": {...}, "timestamp": {...}}`. */
export interface QmpEventMessage {
  kind: 'event';
  event: string;
  data: JsonObject;
  timestamp: QmpTimestamp;
}

export type QmpMessage = QmpGreeting | QmpReturn | QmpErrorReply | QmpEventMessage;

/** A command to send. `oob` sends it as `exec-oob` (needs the `oob` capability). */
export interface QmpCommand {
  execute: string;
  arguments?: JsonObject | undefined;
  id?: JsonValue | undefined;
  oob?: boolean | undefined;
}
