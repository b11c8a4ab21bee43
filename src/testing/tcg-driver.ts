/**
 * A QEMU driver for tests and benchmarks of one host: TCG, its state and disks under `base`, the
 * tiny guest's kernel and initrd readable from its storage roots.
 */
import { dirname, join } from 'node:path';
import { systemClock } from '../core/clock.js';
import { silentLogger } from '../core/logger.js';
import { QemuDriver } from '../hypervisors/qemu/qemu-driver.js';
import { ensureGuestImage, type GuestImage } from './guest-image.js';

export async function startTcgDriver(
  base: string,
  hostName: string,
): Promise<{ driver: QemuDriver; image: GuestImage }> {
  const image = await ensureGuestImage();
  const driver = new QemuDriver({
    stateDir: join(base, 'state'),
    storageRoots: [join(base, 'disks'), dirname(image.kernel)],
    accelerator: 'tcg',
    kvmUsable: false,
    hostName,
    clock: systemClock,
    logger: silentLogger,
  });
  await driver.connect();
  return { driver, image };
}
