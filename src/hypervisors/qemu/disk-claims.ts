/**
 * Which VM each disk image belongs to. Storage roots hold every VM's disks
 * and are often shared between hosts, so a path inside a root proves nothing:
 * a VM may only use an existing disk that is its own. Each disk a VM uses is
 * claimed in the storage itself — one small file per disk under
 * `<root>/.zenith-claims/`, named by a hash of the disk's path inside the
 * root — so every host that shares the root sees the same claims. A claim is
 * taken with an exclusive create (two VMs racing for one file: one wins), and
 * records the disk's backing chain, so a file that backs someone's disk is
 * known too. Anything in a root that no claim names (an uploaded image, a
 * kernel) is an image: it may back new disks, never be another VM's disk.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import { ZenithError } from '../../core/errors.js';
import { pathWithinRoots } from '../../core/paths.js';

export const claimsDirName = '.zenith-claims';

export interface DiskClaim {
  /** The VM that owns the disk (its UUID, kept across hosts and migrations). */
  vm: string;
  /** The VM's name when the claim was taken, for messages. */
  name: string;
  /** The disk, as a real path on the host that took the claim. */
  file: string;
  /** The images under it (its backing chain, nearest first), as real paths. */
  backing: string[];
}

export class DiskClaims {
  constructor(private readonly roots: string[]) {}

  /** The claim on a file, or null when no VM owns it. */
  owner(file: string): DiskClaim | null {
    const path = this.#claimPath(file);
    if (!path) return null;
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as DiskClaim;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  /** Every claim in every root (to find the disks a file backs). */
  all(): DiskClaim[] {
    const claims: DiskClaim[] = [];
    for (const root of this.roots) {
      const dir = join(root, claimsDirName);
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (!name.endsWith('.json')) continue;
        try {
          claims.push(JSON.parse(readFileSync(join(dir, name), 'utf8')) as DiskClaim);
        } catch {
          // a claim being written or removed meanwhile
        }
      }
    }
    return claims;
  }

  /**
   * Refuses a file that is not free for `vm` to use as a disk: another VM's disk, or an image that
   * backs another VM's disk (writing it would change what that disk reads).
   */
  checkUsable(file: string, vm: { uuid: string; name: string }, backing: string[]): void {
    const claim = this.owner(file);
    if (claim && claim.vm !== vm.uuid) throw inUse(file, "it is another VM's disk");
    for (const image of backing) {
      const under = this.owner(image);
      if (under && under.vm !== vm.uuid)
        throw inUse(file, `it is backed by ${image}, another VM's disk`);
    }
    if (!claim) {
      const backed = this.all().find(
        (other) => other.vm !== vm.uuid && other.backing.includes(file),
      );
      if (backed) throw inUse(file, "it backs another VM's disk");
    }
  }

  /** Refuses an image that is some VM's disk (as a backing file, kernel or initrd it would be read by another). */
  checkImage(file: string, vm: { uuid: string }, chain: string[] = []): void {
    for (const image of [file, ...chain]) {
      const claim = this.owner(image);
      if (claim && claim.vm !== vm.uuid)
        throw inUse(file, `${image === file ? 'it' : image} is another VM's disk`);
    }
  }

  /** Claims a disk for a VM; a claim by the same VM is kept (idempotent), another's refuses. */
  claim(file: string, vm: { uuid: string; name: string }, backing: string[] = []): void {
    const path = this.#claimPath(file);
    if (!path) return;
    mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
    const claim: DiskClaim = { vm: vm.uuid, name: vm.name, file, backing };
    try {
      writeFileSync(path, JSON.stringify(claim), { flag: 'wx', mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const held = this.owner(file);
      if (held && held.vm !== vm.uuid) throw inUse(file, "it is another VM's disk");
    }
  }

  /** Ends a VM's claim on a disk (the disk was removed, or the VM is gone). */
  release(file: string, vm: { uuid: string }): void {
    const path = this.#claimPath(file);
    if (!path) return;
    const held = this.owner(file);
    if (held?.vm === vm.uuid) rmSync(path, { force: true });
  }

  /** Where the claim of a file lives: in the claims directory of the root that holds it. */
  #claimPath(file: string): string | null {
    let real: string;
    try {
      real = pathWithinRoots(file, this.roots);
    } catch {
      return null; // outside every root: nothing to claim (validation refuses such paths)
    }
    for (const root of this.roots) {
      let inside: string;
      try {
        inside = relative(pathWithinRoots(root, [root]), real);
      } catch {
        continue;
      }
      if (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) continue;
      const key = createHash('sha256').update(inside).digest('hex').slice(0, 40);
      return join(root, claimsDirName, `${key}.json`);
    }
    return null;
  }
}

function inUse(file: string, why: string): ZenithError {
  return new ZenithError(
    'ZEN_DISK_IN_USE',
    `${file} cannot be used: ${why}. A VM may use only its own disks, and images that no VM writes`,
    { file },
  );
}
