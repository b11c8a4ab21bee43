/**
 * A process that opens a reader of a stopped VM's disk through the QEMU driver and waits to be
 * killed (test/hypervisors/qemu/qemu-disk-streams.test.ts kills it with SIGKILL).
 *   node --import tsx disk-reader-child.ts STATE_DIR STORAGE_ROOT VM_ID
 */
import { systemClock } from '../../../src/core/clock.js';
import { silentLogger } from '../../../src/core/logger.js';
import { QemuDriver } from '../../../src/hypervisors/qemu/qemu-driver.js';

const [stateDir, storageRoot, vmId] = process.argv.slice(2) as [string, string, string];
const driver = new QemuDriver({
  stateDir,
  storageRoots: [storageRoot],
  accelerator: 'tcg',
  kvmUsable: false,
  hostName: 'streamer',
  clock: systemClock,
  logger: silentLogger,
});
await driver.connect();
const context = { signal: new AbortController().signal, progress: () => undefined };
const reader = await driver.facets.diskStreams.openReader(vmId, 'disk0', {}, context);
process.stdout.write(`open ${reader.capacityBytes}\n`);
setInterval(() => undefined, 60_000);
