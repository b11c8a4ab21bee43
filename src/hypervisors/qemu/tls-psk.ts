/**
 * TLS with a pre-shared key, as QEMU's `tls-creds-psk` object reads it: a directory holding
 * `keys.psk`, one `identity:hexkey` line per identity (GnuTLS's psktool format). The server's
 * directory may list several identities; a client's names the one it uses (`username`).
 * QEMU reads the file at every handshake, so it stays in place while the credentials are in use.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ZenithError } from '../../core/errors.js';

/** One replication's key: who the client says it is, and the secret both ends hold (hex). */
export interface PskCredentials {
  identity: string;
  /** The key as hex digits (32 random bytes from `newPskKey`). */
  key: string;
}

/** A fresh key for one replication: 256 random bits as hex. */
export function newPskKey(): string {
  return randomBytes(32).toString('hex');
}

/** Refuses what QEMU's file format cannot carry: an identity with a colon or a line break, a key that is not hex. */
export function checkPsk(psk: PskCredentials): void {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(psk.identity))
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      'a PSK identity is 1 to 64 letters, digits, dots, dashes or underscores',
      { field: 'identity' },
    );
  if (!/^([0-9a-f]{2}){16,64}$/i.test(psk.key))
    throw new ZenithError('ZEN_BAD_REQUEST', 'a PSK key is 16 to 64 bytes written as hex', {
      field: 'key',
    });
}

/**
 * Writes `dir/keys.psk` for these credentials: the directory 0700, the file 0600, written beside
 * its name and renamed, so QEMU never reads half a key. Answers the directory.
 */
export function writePskDir(dir: string, psk: PskCredentials): string {
  checkPsk(psk);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = join(dir, 'keys.psk');
  writeFileSync(`${file}.tmp`, `${psk.identity}:${psk.key}\n`, { mode: 0o600 });
  chmodSync(`${file}.tmp`, 0o600);
  renameSync(`${file}.tmp`, file);
  return dir;
}
