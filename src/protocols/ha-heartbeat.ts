/**
 * The storage heartbeat of high availability, as both ends read it: a host's
 * agent writes `<storageRoot>/.zenith-ha/<hostName>.json` every heartbeatMs on
 * the shared storage its VMs' disks live on, and the control plane reads it
 * (through any live agent that shares that storage) to tell a dead host from
 * an isolated one. Written atomically — a temporary file in the same
 * directory, fsynced, renamed over the old one — so a reader sees the old
 * heartbeat or the new one, never part of one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { ZenithError } from '../core/errors.js';

/** The directory of heartbeats in a storage root. */
export const heartbeatDirName = '.zenith-ha';

export const HaHeartbeat = Type.Object({
  format: Type.Literal(1),
  /** The host's name as its host object appears in the inventory. */
  host: Type.String({ minLength: 1 }),
  /** Random per agent start: a new bootId is an agent that started again. */
  bootId: Type.String({ minLength: 1 }),
  /** +1 per write, carried on across agent restarts: a reader sees the host alive while it advances. */
  counter: Type.Integer({ minimum: 0 }),
  /** The writer's clock (ms since the epoch) when the write began: for people, not for timing. */
  writtenAt: Type.Number(),
  /** How often the host writes it. */
  heartbeatMs: Type.Integer({ minimum: 1 }),
  /** Whether the agent hears the control plane (its channel answers within 3 heartbeats). */
  channel: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  /** When the agent last heard the control plane, while the channel is down. */
  channelDownSince: Type.Union([Type.Number(), Type.Null()]),
  /** Its VMs (those with a UUID) and whether their QEMU runs. */
  vms: Type.Array(Type.Object({ uuid: Type.String(), running: Type.Boolean() })),
  /**
   * UUIDs of VMs this agent turned off itself (its isolation response, or self-fencing): they are
   * off and it will not start them by itself, so they may run elsewhere. Listed until the control
   * plane clears them (clearReleased).
   */
  released: Type.Array(Type.String()),
  /** When the agent killed its VMs because it lost both the control plane and its storage. */
  fencedAt: Type.Union([Type.Number(), Type.Null()]),
});
export type HaHeartbeat = Static<typeof HaHeartbeat>;

const validator = Compile(HaHeartbeat);

function invalid(message: string, details: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('ZEN_HA_HEARTBEAT_INVALID', message, details);
}

/** Refuses a host name that could not be a file name of its own in the directory. */
function checkHostName(hostName: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(hostName))
    throw new ZenithError('ZEN_BAD_REQUEST', `'${hostName}' cannot name a heartbeat file`, {
      hostName,
    });
}

/** `<root>/.zenith-ha/<hostName>.json` */
export function heartbeatPath(root: string, hostName: string): string {
  checkHostName(hostName);
  return join(root, heartbeatDirName, `${hostName}.json`);
}

/** A heartbeat from its text; ZEN_HA_HEARTBEAT_INVALID for anything else (garbage, truncated). */
export function parseHeartbeat(text: string): HaHeartbeat {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid('the heartbeat is not JSON (garbage or truncated)');
  }
  if (validator.Check(value)) return value;
  const [first] = validator.Errors(value);
  const path = first?.instancePath || '/';
  throw invalid(`the heartbeat is not a heartbeat: ${path} ${first?.message ?? 'is not valid'}`, {
    path,
  });
}

/** The heartbeat in a file; null when there is none. */
export async function readHeartbeatFile(path: string): Promise<HaHeartbeat | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  return parseHeartbeat(text);
}

/**
 * Writes a host's heartbeat into a storage root, atomically: a temporary file (a dot file, which
 * readers skip) in the same directory, fsynced, then renamed over the old one. Creates the
 * directory when missing. A failure leaves the previous heartbeat as it was.
 */
export async function writeHeartbeatFile(root: string, heartbeat: HaHeartbeat): Promise<void> {
  const dir = join(root, heartbeatDirName);
  const target = heartbeatPath(root, heartbeat.host);
  const temporary = join(dir, `.${heartbeat.host}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    const file = await open(temporary, 'wx', 0o644);
    try {
      await file.writeFile(JSON.stringify(heartbeat));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, target);
    // The rename itself survives a crash of the host once the directory is on disk.
    const directory = await open(dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw error;
  }
}

/**
 * Every heartbeat in a storage root's heartbeat directory (none when there is no directory).
 * Files that are not heartbeats are left out and reported apart, with the reason.
 */
export async function readHeartbeatDir(
  root: string,
): Promise<{ heartbeats: HaHeartbeat[]; invalid: Array<{ file: string; message: string }> }> {
  const dir = join(root, heartbeatDirName);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { heartbeats: [], invalid: [] };
    throw error;
  }
  const heartbeats: HaHeartbeat[] = [];
  const invalidFiles: Array<{ file: string; message: string }> = [];
  for (const name of names.sort()) {
    if (name.startsWith('.') || !name.endsWith('.json')) continue;
    try {
      const heartbeat = await readHeartbeatFile(join(dir, name));
      if (heartbeat) heartbeats.push(heartbeat);
    } catch (error) {
      invalidFiles.push({ file: name, message: (error as Error).message });
    }
  }
  return { heartbeats, invalid: invalidFiles };
}
