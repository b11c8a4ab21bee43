/** QEMU guest agent protocol: codec (decoder, encoder), client and unix-socket connector. */
export * from './messages.js';
export * from './decoder.js';
export * from './encoder.js';
export * from './client.js';
export * from './connect.js';
