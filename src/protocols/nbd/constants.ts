/**
 * Numbers of the NBD protocol (the Network Block Device protocol as the NBD
 * project's proto.md specifies it): the fixed-newstyle handshake, options and
 * their replies, transmission requests and simple and structured replies.
 */

/** "NBDMAGIC": the first eight bytes a server sends. */
export const INIT_MAGIC = Buffer.from('NBDMAGIC', 'latin1');
/** "IHAVEOPT": after INIT_MAGIC in newstyle negotiation, and before every option a client sends. */
export const OPTION_MAGIC = Buffer.from('IHAVEOPT', 'latin1');
/** Starts every reply to an option. */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server) and client flags. */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;
export const CLIENT_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const CLIENT_FLAG_NO_ZEROES = 1 << 1;

export const Option = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

export const OptionReply = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
} as const;

/** Option replies with bit 31 set are errors. */
export const OPTION_REPLY_ERROR_BIT = 0x8000_0000;
export const optionErrorNames: Record<number, string> = {
  [0x8000_0001]: 'NBD_REP_ERR_UNSUP',
  [0x8000_0002]: 'NBD_REP_ERR_POLICY',
  [0x8000_0003]: 'NBD_REP_ERR_INVALID',
  [0x8000_0004]: 'NBD_REP_ERR_PLATFORM',
  [0x8000_0005]: 'NBD_REP_ERR_TLS_REQD',
  [0x8000_0006]: 'NBD_REP_ERR_UNKNOWN',
  [0x8000_0007]: 'NBD_REP_ERR_SHUTDOWN',
  [0x8000_0008]: 'NBD_REP_ERR_BLOCK_SIZE_REQD',
  [0x8000_0009]: 'NBD_REP_ERR_TOO_BIG',
};

export const Info = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

/** Transmission flags of an export. */
export const TransmissionFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
} as const;

export const Command = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

export const CommandFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
} as const;

export const REPLY_FLAG_DONE = 1 << 0;

export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: (1 << 15) + 1,
  ERROR_OFFSET: (1 << 15) + 2,
} as const;

/** Error values in replies: the protocol's fixed subset of errno. */
export const errnoNames: Record<number, string> = {
  1: 'EPERM',
  5: 'EIO',
  12: 'ENOMEM',
  22: 'EINVAL',
  28: 'ENOSPC',
  75: 'EOVERFLOW',
  95: 'ENOTSUP',
  108: 'ESHUTDOWN',
};

/** Status flags of the `base:allocation` context. */
export const AllocationFlag = {
  HOLE: 1 << 0,
  ZERO: 1 << 1,
} as const;

/** Status flag of a `qemu:dirty-bitmap:NAME` context: the extent was written since the bitmap began. */
export const DIRTY = 1 << 0;
