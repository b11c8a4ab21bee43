/**
 * Encrypts secrets at rest (connection passwords, keys) with AES-256-GCM.
 * The key lives outside the database: a file in the data directory (mode
 * 0600) or ZENITH_SECRET_KEY, so a copy of the database alone reveals nothing.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ZenithError } from './errors.js';

export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32)
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        'the secret key must be 32 bytes (64 hex characters)',
      );
    this.#key = key;
  }

  static fromFile(
    path: string,
    envKey: string | undefined = process.env.ZENITH_SECRET_KEY,
  ): SecretBox {
    if (envKey) return new SecretBox(Buffer.from(envKey, 'hex'));
    if (!existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    }
    return new SecretBox(Buffer.from(readFileSync(path, 'utf8').trim(), 'hex'));
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `v1.${iv.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}.${body.toString('base64url')}`;
  }

  open(sealed: string): string {
    const [version, iv, tag, body] = sealed.split('.');
    if (version !== 'v1' || !iv || !tag || body === undefined)
      throw new ZenithError('ZEN_CONFIG_INVALID', 'a stored secret is not in a known format');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([
        decipher.update(Buffer.from(body, 'base64url')),
        decipher.final(),
      ]).toString('utf8');
    } catch (error) {
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        'a stored secret cannot be decrypted with this key (was ZENITH_SECRET_KEY or secret.key changed?)',
        {},
        { cause: error },
      );
    }
  }
}
