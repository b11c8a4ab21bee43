/**
 * A process that starts a replica daemon and exits at once, as an agent that dies after starting
 * one (test/hypervisors/qemu/qemu-sync-mirror.test.ts then finds the daemon from a fresh call).
 *   node --import tsx replica-daemon-child.ts '<ReplicaDaemonOptions as JSON>'
 */
import { startReplicaDaemon } from '../../../src/hypervisors/qemu/sync-mirror-target.js';

const daemon = await startReplicaDaemon(JSON.parse(process.argv[2]!));
process.stdout.write(`${JSON.stringify(daemon.state)}\n`);
await daemon.release();
process.exit(0);
