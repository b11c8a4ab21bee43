/**
 * Telling events apart: type guards over the union of src/api/events.ts, which narrow an event's
 * `data` to its type's shape. Plain functions with type-only imports, so that the web console can
 * use them without bundling the schemas.
 */
import type { EventType, ZenithEvent } from './events.js';

/** The event a stream's last message has when the server ends it; its data is an error body. */
export const streamClosedEvent = 'stream.closed';

/** The event is of this type (its data then has that type's shape). */
export function isEvent<T extends EventType>(
  event: ZenithEvent,
  type: T,
): event is Extract<ZenithEvent, { type: T }> {
  return event.type === type;
}

export type TaskEventType = Extract<EventType, `task.${string}`>;
export type InventoryEventType = Extract<EventType, `inventory.${string}`>;

/** A task event (queued, running, progress, succeeded, failed, cancelled): its objectId is the task. */
export function isTaskEvent(
  event: ZenithEvent,
): event is Extract<ZenithEvent, { type: TaskEventType }> {
  return event.type.startsWith('task.');
}

/** An inventory event: about the object of its objectId (or, synced, about a connection's all). */
export function isInventoryEvent(
  event: ZenithEvent,
): event is Extract<ZenithEvent, { type: InventoryEventType }> {
  return event.type.startsWith('inventory.');
}

/** The task events that end a task. */
export const taskEndEvents = ['task.succeeded', 'task.failed', 'task.cancelled'] as const;
export function isTaskEnd(
  event: ZenithEvent,
): event is Extract<ZenithEvent, { type: (typeof taskEndEvents)[number] }> {
  return (taskEndEvents as readonly string[]).includes(event.type);
}
