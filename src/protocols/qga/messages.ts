/**
 * Messages of the QEMU guest agent protocol (QGA): what the host sends to qemu-ga over the
 * virtio-serial port `org.qemu.guest_agent.0`, and what it answers. The wire is JSON objects, as
 * QMP, but with no greeting, no events and no ids to route by: one command is answered at a time,
 * and after a lost answer the host finds its place again with `guest-sync-delimited` (the agent
 * writes a 0xFF byte before its answer, a byte no JSON text holds).
 */
export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface QgaCommand {
  execute: string;
  arguments?: JsonObject;
}

export type QgaMessage =
  | { kind: 'return'; value: JsonValue }
  | { kind: 'error'; errorClass: string; desc: string }
  /** The 0xFF byte the agent writes before its answer to `guest-sync-delimited`. */
  | { kind: 'delimiter' };

/** `guest-fsfreeze-status`: the guest's file systems as the agent left them. */
export type FsFreezeStatus = 'thawed' | 'frozen';
