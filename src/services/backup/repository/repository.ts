/**
 * A backup repository on a filesystem path any host can reach (local, or NFS): content-addressed
 * chunks shared by every backup and every VM, and one manifest per backup naming its chunks.
 * docs/backup-repository.md describes the format; this is its one implementation.
 *
 *   zenith-backup-repository.json   format, id, chunk size, encryption (a key check, never the key)
 *   chunks/<first 4 hex>/<name>     one file per chunk (./chunk-codec.ts)
 *   backups/<backup id>.json        manifests: only a finished backup has one
 *   writers/<writer id>.json        a backup being written, refreshed while it runs
 *   tmp/, trash/                    files being written, chunks being removed
 *
 * Everything is written to tmp/ and renamed into place once durable (fsync), so a process killed
 * at any moment leaves whole chunks, whole manifests or nothing. A manifest is written last, after
 * every chunk it names: a backup without a manifest does not exist for a reader.
 *
 * Garbage collection runs beside backups without a lock between hosts: a writer touches every
 * chunk it uses (written new, or found already there) while its lease in writers/ is fresh; the
 * collection marks (touches) every chunk a manifest names, then removes only chunks last touched
 * before the oldest live writer began (and before the collection began), less a grace for clocks.
 * A chunk is removed in two steps — renamed into trash/, then looked at again — so that a writer
 * touching it in between keeps it (see collectGarbage).
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  utimes,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ZenithError } from '../../../core/errors.js';
import { newId } from '../../../core/ids.js';
import {
  chunkName,
  decodeChunk,
  deriveChunkKeys,
  encodeChunk,
  isChunkName,
  keyCheck,
  type ChunkKeys,
} from './chunk-codec.js';
import {
  checkManifest,
  manifestChecksum,
  type BackupManifest,
  type ManifestBody,
} from './manifest.js';

export const REPOSITORY_FORMAT = 1;
const CONFIG_FILE = 'zenith-backup-repository.json';
export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;

export interface RepositoryConfig {
  format: number;
  id: string;
  createdAt: string;
  chunkSize: number;
  encryption: null | { cipher: 'aes-256-gcm'; naming: 'hmac-sha256'; keyCheck: string };
}

export interface GarbageReport {
  /** Chunks named by manifests (marked). */
  marked: number;
  removedChunks: number;
  removedBytes: number;
  /** Chunks a manifest names that are not in the repository: those backups are damaged. */
  missing: Array<{ chunk: string; backups: string[] }>;
  /** Leases of writers that stopped refreshing them (their process died): removed. */
  staleWriters: number;
}

export interface VerifyReport {
  checkedBackups: number;
  checkedChunks: number;
  /** Backups with a damaged or missing chunk, or whose manifest does not match its checksum. */
  damaged: Array<{ backupId: string; chunks: string[]; reason: string }>;
  damagedChunks: string[];
}

export interface RepositoryUsage {
  chunks: number;
  /** Bytes the chunk files take. */
  storedBytes: number;
  backups: number;
  /** What the backups would take without deduplication and compression (their disks' data chunks). */
  logicalBytes: number;
}

/** A writer's lease is refreshed this often, and is dead when not refreshed for `staleMs`. */
const LEASE_REFRESH_MS = 30_000;
const LEASE_STALE_MS = 10 * 60_000;
/** Clocks of hosts writing to one repository may differ by this much. */
const DEFAULT_GRACE_MS = 5 * 60_000;

function repositoryError(
  root: string,
  message: string,
  details: Record<string, unknown> = {},
): ZenithError {
  return new ZenithError('ZEN_BACKUP_REPOSITORY_INVALID', message, { root, ...details });
}

/** ENOSPC and EDQUOT become ZEN_BACKUP_REPOSITORY_FULL; anything else passes. */
function fullOr(error: unknown, root: string): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new ZenithError(
      'ZEN_BACKUP_REPOSITORY_FULL',
      `the backup repository at ${root} is full`,
      { root },
    );
  return error;
}

async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class BackupRepository {
  readonly root: string;
  readonly config: RepositoryConfig;
  readonly #keys: ChunkKeys | undefined;
  /** Chunks being written by this process, by name. */
  readonly #writing = new Map<string, Promise<number>>();

  private constructor(root: string, config: RepositoryConfig, keys: ChunkKeys | undefined) {
    this.root = root;
    this.config = config;
    this.#keys = keys;
  }

  /** Makes a repository in an empty (or new) directory. */
  static async create(
    root: string,
    options: { chunkSize?: number; key?: Buffer; now?: number } = {},
  ): Promise<BackupRepository> {
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (
      !Number.isInteger(chunkSize) ||
      chunkSize < 64 * 1024 ||
      chunkSize > 64 * 1024 * 1024 ||
      chunkSize % 4096 !== 0
    )
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'the chunk size is a multiple of 4 KiB from 64 KiB to 64 MiB',
        { chunkSize },
      );
    let present: string[];
    try {
      await mkdir(root, { recursive: true, mode: 0o700 });
      present = await readdir(root);
    } catch (error) {
      // A file where the directory should be, a parent not writable: said, never an uncoded 500.
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw repositoryError(root, `${root} cannot be a repository's directory (${code})`, {
        reason: code,
      });
    }
    if (present.length > 0)
      throw repositoryError(
        root,
        `${root} is not empty: a repository is made in an empty directory`,
      );
    const config: RepositoryConfig = {
      format: REPOSITORY_FORMAT,
      id: newId('backupRepository', options.now),
      createdAt: new Date(options.now ?? Date.now()).toISOString(),
      chunkSize,
      encryption: options.key
        ? { cipher: 'aes-256-gcm', naming: 'hmac-sha256', keyCheck: keyCheck(options.key) }
        : null,
    };
    const keys = options.key ? deriveChunkKeys(options.key) : undefined;
    for (const dir of ['chunks', 'backups', 'writers', 'tmp', 'trash'])
      await mkdir(join(root, dir), { mode: 0o700 });
    const repository = new BackupRepository(root, config, keys);
    await repository.#writeDurably(
      join(root, CONFIG_FILE),
      Buffer.from(`${JSON.stringify(config, null, 2)}\n`),
    );
    return repository;
  }

  /** Opens an existing repository; an encrypted one needs its key (ZEN_BACKUP_KEY_WRONG otherwise). */
  static async open(root: string, options: { key?: Buffer } = {}): Promise<BackupRepository> {
    let config: RepositoryConfig;
    try {
      config = JSON.parse(await readFile(join(root, CONFIG_FILE), 'utf8')) as RepositoryConfig;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw repositoryError(
        root,
        code === 'ENOENT'
          ? `${root} is not a backup repository (no ${CONFIG_FILE})`
          : `${root}/${CONFIG_FILE} cannot be read: ${code ?? String(error)}`,
      );
    }
    if (config.format !== REPOSITORY_FORMAT)
      throw repositoryError(
        root,
        `the repository at ${root} has format ${String(config.format)}; this Zenith reads format ${REPOSITORY_FORMAT}`,
        {
          format: config.format,
        },
      );
    if (!Number.isInteger(config.chunkSize) || config.chunkSize <= 0)
      throw repositoryError(root, `the repository at ${root} has no valid chunk size`);
    let keys: ChunkKeys | undefined;
    if (config.encryption) {
      if (!options.key)
        throw new ZenithError(
          'ZEN_BACKUP_KEY_WRONG',
          `the repository at ${root} is encrypted: its key is needed`,
          { root },
        );
      if (keyCheck(options.key) !== config.encryption.keyCheck)
        throw new ZenithError(
          'ZEN_BACKUP_KEY_WRONG',
          `the key given is not the key of the repository at ${root}`,
          { root },
        );
      keys = deriveChunkKeys(options.key);
    }
    return new BackupRepository(root, config, keys);
  }

  get encrypted(): boolean {
    return this.#keys !== undefined;
  }

  #chunkPath(name: string): string {
    return join(this.root, 'chunks', name.slice(0, 4), name);
  }

  /** Names the bytes as this repository does (its key, if it has one). */
  nameOf(plain: Uint8Array): Promise<string> {
    return chunkName(plain, this.#keys);
  }

  /** Marks a chunk as in use now; false when it is not there. */
  async touchChunk(name: string): Promise<boolean> {
    const now = new Date();
    try {
      await utimes(this.#chunkPath(name), now, now);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }

  /**
   * Stores the bytes as a chunk unless one of that name is there (then it is touched): answers the
   * name and the bytes written (0 when it was there).
   */
  async putChunk(plain: Buffer): Promise<{ name: string; storedBytes: number }> {
    const name = await this.nameOf(plain);
    // The same bytes twice at once (a disk's chunks of one pattern): written once.
    const pending = this.#writing.get(name);
    if (pending) {
      await pending;
      return { name, storedBytes: 0 };
    }
    const written = this.#putNew(name, plain);
    this.#writing.set(name, written);
    try {
      return { name, storedBytes: await written };
    } finally {
      this.#writing.delete(name);
    }
  }

  async #putNew(name: string, plain: Buffer): Promise<number> {
    if (await this.touchChunk(name)) return 0;
    const blob = await encodeChunk(plain, name, this.#keys);
    const path = this.#chunkPath(name);
    await mkdir(join(this.root, 'chunks', name.slice(0, 4)), { recursive: true, mode: 0o700 });
    await this.#writeDurably(path, blob);
    return blob.length;
  }

  /** The plain bytes of a chunk, checked (ZEN_BACKUP_CHUNK_DAMAGED when missing or altered). */
  async getChunk(name: string): Promise<Buffer> {
    if (!isChunkName(name))
      throw new ZenithError('ZEN_BACKUP_CHUNK_DAMAGED', `${name} is not a chunk name`, {
        chunk: name,
      });
    let blob: Buffer;
    try {
      blob = await readFile(this.#chunkPath(name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new ZenithError('ZEN_BACKUP_CHUNK_DAMAGED', `backup chunk ${name} is missing`, {
          chunk: name,
          why: 'missing',
        });
      throw error;
    }
    return decodeChunk(blob, name, this.#keys);
  }

  /** Writes a file to tmp/, makes it durable, and renames it into place (then makes the rename durable). */
  async #writeDurably(path: string, data: Buffer): Promise<void> {
    const temporary = join(this.root, 'tmp', `${randomBytes(8).toString('hex')}.tmp`);
    let handle: FileHandle | undefined;
    try {
      handle = await open(temporary, 'wx', 0o600);
      await handle.writeFile(data);
      await handle.sync();
      await handle.close();
      handle = undefined;
      await rename(temporary, path);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await unlink(temporary).catch(() => undefined);
      throw fullOr(error, this.root);
    }
    await fsyncDirectory(join(path, '..'));
  }

  /** Starts writing a backup: its lease keeps the chunks it uses from garbage collection. */
  async beginBackup(now = Date.now()): Promise<BackupWriter> {
    const writer = new BackupWriter(this, newId('backup', now), now);
    await writer.refreshLease();
    return writer;
  }

  /** @internal Writer leases live under writers/. */
  leasePath(backupId: string): string {
    return join(this.root, 'writers', `${backupId}.json`);
  }

  /** @internal Writes a lease file (small: no fsync — a lost lease only ends its writer). */
  async writeLease(backupId: string, startedAt: number): Promise<void> {
    await writeFile(
      this.leasePath(backupId),
      JSON.stringify({ backupId, startedAt, host: hostname(), pid: process.pid }),
    );
  }

  /** @internal Writes a finished backup's manifest, last. */
  async writeManifest(manifest: BackupManifest): Promise<void> {
    await this.#writeDurably(
      join(this.root, 'backups', `${manifest.id}.json`),
      Buffer.from(`${JSON.stringify(manifest)}\n`),
    );
  }

  async readManifest(backupId: string): Promise<BackupManifest> {
    if (!/^backup_[0-9A-Z]{26}$/.test(backupId))
      throw new ZenithError('ZEN_BAD_ID', `${backupId} is not a backup id`, { backupId });
    let text: string;
    try {
      text = await readFile(join(this.root, 'backups', `${backupId}.json`), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new ZenithError(
          'ZEN_NOT_FOUND',
          `no backup ${backupId} in the repository at ${this.root}`,
          { backupId },
        );
      throw error;
    }
    return checkManifest(text, this.#keys, backupId);
  }

  /** Every finished backup (manifests that read and check), oldest first. */
  async listBackups(): Promise<{
    backups: BackupManifest[];
    unreadable: Array<{ backupId: string; reason: string }>;
  }> {
    const backups: BackupManifest[] = [];
    const unreadable: Array<{ backupId: string; reason: string }> = [];
    for (const file of (await readdir(join(this.root, 'backups'))).sort()) {
      if (!file.endsWith('.json')) continue;
      const backupId = file.slice(0, -'.json'.length);
      try {
        backups.push(await this.readManifest(backupId));
      } catch (error) {
        unreadable.push({ backupId, reason: (error as Error).message });
      }
    }
    return { backups, unreadable };
  }

  /** Removes a backup (its manifest): its chunks go at the next garbage collection unless others use them. */
  async deleteBackup(backupId: string): Promise<void> {
    await this.readManifest(backupId);
    await unlink(join(this.root, 'backups', `${backupId}.json`));
    await fsyncDirectory(join(this.root, 'backups'));
  }

  /** Leases of live writers, by start time; stale ones (their process died) are removed. */
  async #liveWriters(now: number): Promise<{ oldestStart: number | undefined; stale: number }> {
    let oldestStart: number | undefined;
    let stale = 0;
    for (const file of await readdir(join(this.root, 'writers'))) {
      const path = join(this.root, 'writers', file);
      try {
        const [info, text] = await Promise.all([stat(path), readFile(path, 'utf8')]);
        if (now - info.mtimeMs > LEASE_STALE_MS) {
          await unlink(path);
          stale++;
          continue;
        }
        const { startedAt } = JSON.parse(text) as { startedAt: number };
        oldestStart = Math.min(oldestStart ?? startedAt, startedAt);
      } catch {
        // Gone meanwhile (its backup finished), or half-written: a live writer rewrites it soon.
      }
    }
    return { oldestStart, stale };
  }

  /**
   * Removes chunks no finished backup names and no running backup may still use: marks every chunk
   * the manifests name (touching it), then sweeps chunks last touched before the cutoff — the
   * oldest of this collection's start and every live writer's start, less `graceMs` (the clocks of
   * the hosts that write here). A chunk is renamed into trash/ and looked at again before it goes:
   * a writer that touched it meanwhile (it reuses it) brings it back. Files of writes that were cut
   * off (tmp/) go the same way.
   */
  async collectGarbage(
    options: { graceMs?: number; now?: () => number } = {},
  ): Promise<GarbageReport> {
    const now = options.now ?? Date.now;
    const started = now();
    const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    const { oldestStart, stale } = await this.#liveWriters(started);
    const cutoff = Math.min(started, oldestStart ?? started) - graceMs;
    const users = new Map<string, string[]>();
    for (const manifest of (await this.listBackups()).backups)
      for (const disk of manifest.disks)
        for (const name of disk.chunks)
          if (name !== null) users.set(name, [...(users.get(name) ?? []), manifest.id]);
    const missing: GarbageReport['missing'] = [];
    for (const [name, backups] of users)
      if (!(await this.touchChunk(name)))
        missing.push({ chunk: name, backups: [...new Set(backups)] });
    let removedChunks = 0;
    let removedBytes = 0;
    for (const prefix of await readdir(join(this.root, 'chunks'))) {
      for (const name of await readdir(join(this.root, 'chunks', prefix)).catch(
        () => [] as string[],
      )) {
        if (users.has(name)) continue;
        const path = join(this.root, 'chunks', prefix, name);
        const before = await stat(path).catch(() => undefined);
        if (!before || before.mtimeMs >= cutoff) continue;
        const trashed = join(this.root, 'trash', `${name}.${randomBytes(4).toString('hex')}`);
        try {
          await rename(path, trashed);
        } catch {
          continue;
        }
        const after = await stat(trashed);
        if (after.mtimeMs >= cutoff) {
          // Touched between the look and the move: a writer uses it. Back it goes (a writer that
          // found it missing meanwhile wrote the same bytes under the same name: either copy serves).
          await rename(trashed, path);
          continue;
        }
        await unlink(trashed);
        removedChunks++;
        removedBytes += after.size;
      }
    }
    for (const dir of ['tmp', 'trash'])
      for (const file of await readdir(join(this.root, dir))) {
        const path = join(this.root, dir, file);
        const info = await stat(path).catch(() => undefined);
        if (info && info.mtimeMs < cutoff) await rm(path, { force: true });
      }
    return { marked: users.size, removedChunks, removedBytes, missing, staleWriters: stale };
  }

  /**
   * Re-reads every chunk the finished backups name and checks it against its name, and every
   * manifest against its checksum: answers which backups are damaged and by which chunks.
   */
  /**
   * Re-reads every chunk the manifests name (each once, four at a time) and checks it against its
   * name; answers the backups that use a damaged or missing one.
   */
  async verify(
    options: { signal?: AbortSignal; progress?: (checked: number, total: number) => void } = {},
  ): Promise<VerifyReport> {
    const { backups, unreadable } = await this.listBackups();
    const damaged: VerifyReport['damaged'] = unreadable.map(({ backupId, reason }) => ({
      backupId,
      chunks: [],
      reason,
    }));
    const names = [
      ...new Set(
        backups.flatMap((manifest) =>
          manifest.disks.flatMap((disk) => disk.chunks.filter((name) => name !== null)),
        ),
      ),
    ];
    const verdicts = new Map<string, boolean>();
    let next = 0;
    const lane = async () => {
      while (next < names.length) {
        if (options.signal?.aborted)
          throw new ZenithError('ZEN_TASK_CANCELLED', 'the verify was cancelled');
        const name = names[next++]!;
        const good = await this.getChunk(name).then(
          () => true,
          (error: unknown) => {
            if (error instanceof ZenithError && error.code === 'ZEN_BACKUP_CHUNK_DAMAGED')
              return false;
            throw error;
          },
        );
        verdicts.set(name, good);
        options.progress?.(verdicts.size, names.length);
      }
    };
    await Promise.all([lane(), lane(), lane(), lane()]);
    for (const manifest of backups) {
      const bad = new Set<string>();
      for (const disk of manifest.disks)
        for (const name of disk.chunks) if (name !== null && !verdicts.get(name)) bad.add(name);
      if (bad.size > 0)
        damaged.push({
          backupId: manifest.id,
          chunks: [...bad],
          reason: `${bad.size} damaged or missing chunk(s)`,
        });
    }
    const damagedChunks = [...verdicts].filter(([, good]) => !good).map(([name]) => name);
    // A damaged chunk is put aside (<name>.bad, removed by a later garbage collection): the next
    // backup that has those bytes writes the chunk anew instead of naming the damaged file.
    for (const name of damagedChunks)
      await rename(this.#chunkPath(name), `${this.#chunkPath(name)}.bad`).catch(() => undefined);
    return {
      checkedBackups: backups.length + unreadable.length,
      checkedChunks: verdicts.size,
      damaged,
      damagedChunks,
    };
  }

  async usage(): Promise<RepositoryUsage> {
    let chunks = 0;
    let storedBytes = 0;
    for (const prefix of await readdir(join(this.root, 'chunks')))
      for (const name of await readdir(join(this.root, 'chunks', prefix)).catch(
        () => [] as string[],
      )) {
        const info = await stat(join(this.root, 'chunks', prefix, name)).catch(() => undefined);
        if (!info) continue;
        chunks++;
        storedBytes += info.size;
      }
    const { backups } = await this.listBackups();
    let logicalBytes = 0;
    for (const manifest of backups)
      for (const disk of manifest.disks)
        disk.chunks.forEach((name, index) => {
          if (name !== null)
            logicalBytes += Math.min(
              manifest.chunkSize,
              disk.capacityBytes - index * manifest.chunkSize,
            );
        });
    return { chunks, storedBytes, backups: backups.length, logicalBytes };
  }

  /** @internal The checksum a manifest of this repository carries. */
  checksumOf(body: ManifestBody): string {
    return manifestChecksum(body, this.#keys);
  }
}

/**
 * One backup being written: chunks go in as they are read, its lease is refreshed meanwhile, and
 * commit writes the manifest — after which it exists — or abort leaves nothing but chunks that
 * the next garbage collection removes unless another backup uses them.
 */
export class BackupWriter {
  readonly repository: BackupRepository;
  readonly id: string;
  readonly startedAt: number;
  #timer: NodeJS.Timeout | undefined;
  #ended = false;

  constructor(repository: BackupRepository, id: string, startedAt: number) {
    this.repository = repository;
    this.id = id;
    this.startedAt = startedAt;
  }

  /** @internal Writes the lease now and keeps it fresh until the writer ends. */
  async refreshLease(): Promise<void> {
    await this.repository.writeLease(this.id, this.startedAt);
    if (!this.#timer) {
      this.#timer = setInterval(() => {
        this.repository.writeLease(this.id, this.startedAt).catch(() => undefined);
      }, LEASE_REFRESH_MS);
      this.#timer.unref();
    }
  }

  putChunk(plain: Buffer): Promise<{ name: string; storedBytes: number }> {
    this.#checkOpen();
    return this.repository.putChunk(plain);
  }

  /** Uses a chunk already in the repository (an unchanged part of the last backup): false when it is gone. */
  reuseChunk(name: string): Promise<boolean> {
    this.#checkOpen();
    return this.repository.touchChunk(name);
  }

  /** Writes the manifest: the backup exists from now on. */
  async commit(
    body: Omit<ManifestBody, 'format' | 'id' | 'chunkSize' | 'repositoryId'>,
  ): Promise<BackupManifest> {
    this.#checkOpen();
    const lease = await stat(this.repository.leasePath(this.id)).catch(() => undefined);
    if (!lease)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `backup ${this.id} lost its lease (stopped for longer than ${LEASE_STALE_MS / 60_000} minutes): it is not kept`,
        { backupId: this.id },
      );
    const full: ManifestBody = {
      format: REPOSITORY_FORMAT,
      id: this.id,
      repositoryId: this.repository.config.id,
      chunkSize: this.repository.config.chunkSize,
      ...body,
    };
    const manifest: BackupManifest = { ...full, checksum: this.repository.checksumOf(full) };
    await this.repository.writeManifest(manifest);
    await this.#end();
    return manifest;
  }

  async abort(): Promise<void> {
    if (this.#ended) return;
    await this.#end();
  }

  #checkOpen(): void {
    if (this.#ended) throw new ZenithError('ZEN_INVALID_STATE', `backup ${this.id} has ended`);
  }

  async #end(): Promise<void> {
    this.#ended = true;
    clearInterval(this.#timer);
    await unlink(this.repository.leasePath(this.id)).catch(() => undefined);
  }
}
