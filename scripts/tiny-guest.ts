/**
 * Puts the tiny test guest (a Debian cloud kernel and a busybox initramfs, built from Debian
 * packages) into a storage root, so the five-minute tour can boot a real VM:
 *   node --import tsx scripts/tiny-guest.ts [DIR]      (default: ./.zenith/images)
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../src/testing/guest-image.js';

const target = resolve(process.argv[2] ?? join(process.env.ZENITH_DATA_DIR ?? '.zenith', 'images'));
mkdirSync(target, { recursive: true });
const image = await ensureGuestImage();
copyFileSync(image.kernel, join(target, 'tiny-vmlinuz'));
copyFileSync(image.initrd, join(target, 'tiny-initrd.gz'));
process.stdout.write(
  `${join(target, 'tiny-vmlinuz')}\n${join(target, 'tiny-initrd.gz')}\nkernel command line: ${GUEST_KERNEL_APPEND}\n`,
);
