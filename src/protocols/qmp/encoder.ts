import type { JsonObject, QmpCommand } from './messages.js';

/**
 * Serializes one command as a line of JSON. QMP needs no newline between
 * objects, but one keeps the stream readable in traces and matches what QEMU sends.
 */
export function encodeCommand(command: QmpCommand): Buffer {
  const wire: JsonObject = { [command.oob ? 'exec-oob' : 'execute']: command.execute };
  if (command.arguments !== undefined) wire.arguments = command.arguments;
  if (command.id !== undefined) wire.id = command.id;
  return Buffer.from(`${JSON.stringify(wire)}\n`, 'utf8');
}
