/**
 * The contract's guards that narrow an event's data by its type (src/api/event-guards.ts: plain
 * functions, no schemas, so bundling them brings nothing else of the server).
 */
export {
  isEvent,
  isInventoryEvent,
  isTaskEnd,
  isTaskEvent,
  streamClosedEvent,
} from '../../../src/api/event-guards.ts';
