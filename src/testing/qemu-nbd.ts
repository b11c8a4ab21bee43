/**
 * qemu-nbd (QEMU's own NBD server, Debian's qemu-utils) serving one image on a unix socket: the
 * real peer of the NBD client's tests, started as the QEMU driver starts it.
 */
export { startQemuNbd, type QemuNbd, type QemuNbdOptions } from '../hypervisors/qemu/qemu-nbd.js';
