/**
 * One chunk of a backup repository as bytes on disk (docs/backup-repository.md):
 *
 *   "ZCH1" | flags (1 byte: 1 = deflate-compressed, 2 = encrypted) | [iv (12) | tag (16)] | payload
 *
 * A chunk is named by a strong hash of its plain bytes: SHA-256 in a repository without a key;
 * in an encrypted one an HMAC-SHA256 under a key derived from the repository's, so that its names
 * tell nothing to someone without the key. Compression (raw deflate, level 1: Node's own zlib, in
 * its thread pool) is kept only where it saves; encryption is AES-256-GCM under a second derived
 * key, with a fresh IV per chunk and the chunk's name as associated data (a chunk cannot be passed
 * off under another's name). Reading checks the name against the bytes: a damaged chunk is never
 * taken for a good one.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import { ZenithError } from '../../../core/errors.js';

const MAGIC = Buffer.from('ZCH1', 'latin1');
const COMPRESSED = 1;
const ENCRYPTED = 2;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
/** Compressed bytes are kept only when they are at most this share of the plain ones. */
const WORTH_COMPRESSING = 0.95;

const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);
/**
 * zlib's output buffer, and so how much one turn in the thread pool produces. Node's 16 KiB
 * default costs a turn per 16 KiB: with whole-chunk buffers inflating is three times as fast and
 * deflating a quarter faster (docs/performance.md).
 */
const ZLIB_BUFFER = 4 * 1024 * 1024;
/** No chunk is larger (a repository's chunks are 64 KiB to 64 MiB): a chunk that inflates past it is damaged, not followed. */
const MAX_PLAIN = 64 * 1024 * 1024;

/** The two keys an encrypted repository's chunks use, derived from the repository key. */
export interface ChunkKeys {
  readonly encryption: Buffer;
  readonly naming: Buffer;
}

export function deriveChunkKeys(repositoryKey: Buffer): ChunkKeys {
  if (repositoryKey.length !== 32) {
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      'a backup repository key is 32 bytes (64 hex characters)',
    );
  }
  const derive = (info: string) =>
    Buffer.from(hkdfSync('sha256', repositoryKey, Buffer.alloc(0), info, 32));
  return {
    encryption: derive('zenith backup chunk encryption'),
    naming: derive('zenith backup chunk naming'),
  };
}

/** What an encrypted repository's configuration keeps to recognise its key (never the key). */
export function keyCheck(repositoryKey: Buffer): string {
  return createHmac('sha256', repositoryKey)
    .update('zenith backup repository key check')
    .digest('base64url');
}

const namingKeys = new WeakMap<ChunkKeys, Promise<webcrypto.CryptoKey>>();

/**
 * The chunk's name. Web Crypto's digest and HMAC run in Node's thread pool, beside the zlib work,
 * where `createHash` would take the event loop's thread: hashing a 4 MiB chunk there costs 2.5 ms
 * that reading and writing wait for.
 */
export async function chunkName(plain: Uint8Array, keys?: ChunkKeys): Promise<string> {
  if (!keys) return Buffer.from(await webcrypto.subtle.digest('SHA-256', plain)).toString('hex');
  let key = namingKeys.get(keys);
  if (!key) {
    key = webcrypto.subtle.importKey('raw', keys.naming, { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
    ]);
    namingKeys.set(keys, key);
  }
  return Buffer.from(await webcrypto.subtle.sign('HMAC', await key, plain)).toString('hex');
}

export const isChunkName = (name: string) => /^[0-9a-f]{64}$/.test(name);

export async function encodeChunk(plain: Buffer, name: string, keys?: ChunkKeys): Promise<Buffer> {
  let flags = 0;
  let payload = plain;
  const compressed = await deflate(plain, { level: 1, chunkSize: ZLIB_BUFFER });
  if (compressed.length <= plain.length * WORTH_COMPRESSING) {
    flags |= COMPRESSED;
    payload = compressed;
  }
  if (!keys) return Buffer.concat([MAGIC, Buffer.from([flags]), payload]);
  flags |= ENCRYPTED;
  const iv = randomBytes(IV_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', keys.encryption, iv);
  cipher.setAAD(Buffer.from(name, 'latin1'));
  const body = Buffer.concat([cipher.update(payload), cipher.final()]);
  return Buffer.concat([MAGIC, Buffer.from([flags]), iv, cipher.getAuthTag(), body]);
}

function damaged(name: string, why: string): ZenithError {
  return new ZenithError('ZEN_BACKUP_CHUNK_DAMAGED', `backup chunk ${name} is damaged: ${why}`, {
    chunk: name,
    why,
  });
}

/** The plain bytes of a chunk, checked against its name (ZEN_BACKUP_CHUNK_DAMAGED otherwise). */
export async function decodeChunk(blob: Buffer, name: string, keys?: ChunkKeys): Promise<Buffer> {
  if (blob.length < MAGIC.length + 1 || !blob.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw damaged(name, 'it does not start as a chunk does');
  }
  const flags = blob[MAGIC.length]!;
  let payload = blob.subarray(MAGIC.length + 1);
  if (flags & ENCRYPTED) {
    if (!keys) throw damaged(name, 'it is encrypted and no key was given');
    if (payload.length < IV_LENGTH + TAG_LENGTH)
      throw damaged(name, 'it is shorter than its IV and tag');
    const decipher = createDecipheriv(
      'aes-256-gcm',
      keys.encryption,
      payload.subarray(0, IV_LENGTH),
    );
    decipher.setAAD(Buffer.from(name, 'latin1'));
    decipher.setAuthTag(payload.subarray(IV_LENGTH, IV_LENGTH + TAG_LENGTH));
    try {
      payload = Buffer.concat([
        decipher.update(payload.subarray(IV_LENGTH + TAG_LENGTH)),
        decipher.final(),
      ]);
    } catch {
      throw damaged(name, 'it does not decrypt (altered, or another key)');
    }
  } else if (keys) {
    throw damaged(name, 'it is not encrypted in an encrypted repository');
  }
  let plain = payload;
  if (flags & COMPRESSED) {
    try {
      plain = await inflate(payload, { chunkSize: ZLIB_BUFFER, maxOutputLength: MAX_PLAIN });
    } catch {
      throw damaged(name, 'it does not decompress');
    }
  }
  if ((await chunkName(plain, keys)) !== name)
    throw damaged(name, 'its bytes do not hash to its name');
  return plain;
}
