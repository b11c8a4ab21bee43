/** QEMU Machine Protocol: codec (decoder, encoder), client and unix-socket connector. */
export * from './messages.js';
export * from './decoder.js';
export * from './encoder.js';
export * from './commands.js';
export * from './events.js';
export type { Unsubscribe } from './event-hub.js';
export * from './client.js';
export * from './jobs.js';
export * from './connect.js';
