/**
 * A domain as the portable-VM facet reads it (kernel boot, firmware, disk buses and read-only
 * disks) and the domain it defines from a description, read back as libvirt would store it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { portableDomainXml } from '../../../src/hypervisors/libvirt/domain-builder.js';
import { parseDomainXml } from '../../../src/hypervisors/libvirt/domain-xml.js';

const uuid = '7a05dc9a-7880-41c0-a017-3e2c0ae4b10e';

test('a live domain: its direct kernel boot, BIOS, disks with bus and read-only, and an empty CD drive', () => {
  const d = parseDomainXml(`<domain type='qemu' id='3'>
  <name>web</name><uuid>${uuid}</uuid>
  <memory unit='KiB'>98304</memory><vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <kernel>/images/vmlinuz</kernel><initrd>/images/initrd.gz</initrd><cmdline>console=ttyS0</cmdline></os>
  <devices>
    <disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>
      <source pool='shared' volume='web-disk0.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='/shared/seed.img'/><target dev='sda' bus='sata'/><readonly/></disk>
    <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
    <serial type='pty'><target port='0'/></serial>
  </devices></domain>`);
  assert.deepEqual(d.kernel, {
    kernel: '/images/vmlinuz',
    initrd: '/images/initrd.gz',
    cmdline: 'console=ttyS0',
  });
  assert.equal(d.firmware, 'bios');
  assert.deepEqual(
    d.disks.map((disk) => [disk.device, disk.sourceType, disk.source, disk.bus, disk.readOnly]),
    [
      ['disk', 'volume', 'shared/web-disk0.qcow2', 'virtio', false],
      ['disk', 'file', '/shared/seed.img', 'sata', true],
      ['cdrom', 'file', null, 'ide', true],
    ],
  );
});

test('the domain defined from a description keeps UUID, MACs, firmware, machine and disks, and names what it owns', () => {
  const xml = portableDomainXml({
    domainType: 'qemu',
    arch: 'x86_64',
    name: 'web',
    uuid,
    cpus: 2,
    memoryBytes: 128 * 2 ** 20,
    firmware: 'uefi',
    machine: 'q35',
    kernel: null,
    disks: [
      { path: '/shared/web-disk0.qcow2', format: 'qcow2', bus: 'virtio', readOnly: false },
      { path: '/shared/data.qcow2', format: 'qcow2', bus: 'virtio', readOnly: false },
      { path: '/shared/seed.img', format: 'raw', bus: 'sata', readOnly: true },
    ],
    nics: [
      { type: 'network', mac: '52:54:00:12:34:56', model: 'virtio', source: 'default' },
      { type: 'bridge', mac: '52:54:00:12:34:57', model: 'e1000', source: 'br0' },
    ],
    serialConsole: true,
    graphics: false,
    ownedVolumes: [{ pool: 'shared', name: 'web-disk0.qcow2' }],
  });
  const d = parseDomainXml(xml);
  assert.deepEqual([d.name, d.uuid, d.vcpus, d.memoryBytes], ['web', uuid, 2, 128 * 2 ** 20]);
  assert.deepEqual([d.firmware, d.machine, d.bootKind, d.kernel], ['uefi', 'q35', 'disk', null]);
  assert.deepEqual(
    d.disks.map((disk) => [disk.source, disk.format, disk.target, disk.bus, disk.readOnly]),
    [
      ['/shared/web-disk0.qcow2', 'qcow2', 'vda', 'virtio', false],
      ['/shared/data.qcow2', 'qcow2', 'vdb', 'virtio', false],
      ['/shared/seed.img', 'raw', 'sda', 'sata', true],
    ],
  );
  assert.deepEqual(
    d.interfaces.map((nic) => [nic.type, nic.mac, nic.model, nic.source]),
    [
      ['network', '52:54:00:12:34:56', 'virtio', 'default'],
      ['bridge', '52:54:00:12:34:57', 'e1000', 'br0'],
    ],
  );
  assert.equal(d.serialConsole, true);
  assert.deepEqual(d.zenith, { ownedVolumes: [{ pool: 'shared', name: 'web-disk0.qcow2' }] });
});

test('names and paths are escaped, never pasted into the markup', () => {
  const xml = portableDomainXml({
    domainType: 'kvm',
    arch: null,
    name: 'a<b>&c',
    uuid,
    cpus: 1,
    memoryBytes: 2 ** 20,
    firmware: 'bios',
    machine: 'pc',
    kernel: { kernel: '/k/\'vmlinuz"', cmdline: 'x=<y>' },
    disks: [{ path: '/s/</source><x>', format: 'raw', bus: 'ide', readOnly: false }],
    nics: [],
    serialConsole: false,
    graphics: false,
    ownedVolumes: [],
  });
  const d = parseDomainXml(xml);
  assert.equal(d.name, 'a<b>&c');
  assert.deepEqual(d.kernel, { kernel: '/k/\'vmlinuz"', initrd: null, cmdline: 'x=<y>' });
  assert.deepEqual(
    d.disks.map((disk) => [disk.source, disk.target]),
    [['/s/</source><x>', 'hda']],
  );
});
