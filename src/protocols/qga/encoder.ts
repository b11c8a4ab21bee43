import type { JsonObject, QgaCommand } from './messages.js';

/** The byte that resets the agent's JSON parser (sent before `guest-sync-delimited`). */
export const QGA_DELIMITER = 0xff;

/** Serializes one command as a line of JSON (qemu-ga needs no newline; it keeps traces readable). */
export function encodeQgaCommand(command: QgaCommand): Buffer {
  const wire: JsonObject = { execute: command.execute };
  if (command.arguments !== undefined) wire.arguments = command.arguments;
  return Buffer.from(`${JSON.stringify(wire)}\n`, 'utf8');
}

/**
 * What the host sends to find its place in the stream: 0xFF (the agent drops what it had parsed
 * so far), then `guest-sync-delimited` with an id the agent echoes after its own 0xFF.
 */
export function encodeQgaSync(id: number): Buffer {
  return Buffer.concat([
    Buffer.of(QGA_DELIMITER),
    encodeQgaCommand({ execute: 'guest-sync-delimited', arguments: { id } }),
  ]);
}
