/** What a libvirt connection declares it can do, by libvirt driver (only what was tested against a real daemon). */
import type { Capability } from '../driver.js';

const lifecycle: Capability[] = [
  'vm.start',
  'vm.stop',
  'vm.shutdown',
  'vm.reboot',
  'vm.suspend',
  'vm.resume',
  'vm.delete',
];

/** What each libvirt driver is known to do through this driver (tested: test and qemu). */
export function capabilitiesOf(driver: string): Capability[] {
  switch (driver) {
    case 'qemu':
      return [...lifecycle, 'vm.create', 'vm.snapshot', 'vm.console', 'vm.migrate'];
    case 'test':
      return [...lifecycle, 'vm.create', 'vm.snapshot'];
    default:
      return [...lifecycle, 'vm.console'];
  }
}
