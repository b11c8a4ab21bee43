/** libvirt connection URIs and settings: what a user may write, and the coded refusal of the rest. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZenithError } from '../../../src/core/errors.js';
import { validateLibvirtSettings } from '../../../src/hypervisors/libvirt/libvirt-settings.js';
import { parseLibvirtUri } from '../../../src/hypervisors/libvirt/libvirt-uri.js';
import { DriverRegistry } from '../../../src/hypervisors/registry.js';

function refused(work: () => unknown, key?: string): ZenithError {
  try {
    work();
  } catch (error) {
    assert.ok(error instanceof ZenithError, String(error));
    assert.equal(error.code, 'ZEN_CONFIG_INVALID', error.message);
    if (key) assert.equal(error.details.key, key, error.message);
    return error;
  }
  assert.fail('expected ZEN_CONFIG_INVALID');
}

test('the URIs of the issue parse to a transport, an address and the name the daemon opens', () => {
  const cases = [
    ['qemu:///system', 'qemu', 'unix', null, null, '/run/libvirt/libvirt-sock', 'qemu:///system'],
    [
      'qemu+tls://kvm-1.example/system',
      'qemu',
      'tls',
      'kvm-1.example',
      16514,
      null,
      'qemu:///system',
    ],
    ['qemu://kvm-1/system', 'qemu', 'tls', 'kvm-1', 16514, null, 'qemu:///system'],
    [
      'test+unix:///default',
      'test',
      'unix',
      null,
      null,
      '/run/libvirt/libvirt-sock',
      'test:///default',
    ],
    ['lxc:///', 'lxc', 'unix', null, null, '/run/libvirt/libvirt-sock', 'lxc:///'],
    ['xen+tls://xen-1/system', 'xen', 'tls', 'xen-1', 16514, null, 'xen:///system'],
    ['qemu+tcp://10.0.0.5:16600/system', 'qemu', 'tcp', '10.0.0.5', 16600, null, 'qemu:///system'],
    ['qemu+tcp://[fd00::5]/system', 'qemu', 'tcp', 'fd00::5', 16509, null, 'qemu:///system'],
    [
      'test+unix:///default?socket=/tmp/x/libvirt-sock',
      'test',
      'unix',
      null,
      null,
      '/tmp/x/libvirt-sock',
      'test:///default',
    ],
  ] as const;
  for (const [text, driver, transport, host, port, socket, remoteName] of cases) {
    const uri = parseLibvirtUri(text);
    assert.deepEqual(
      {
        driver: uri.driver,
        transport: uri.transport,
        host: uri.host,
        port: uri.port,
        socket: uri.socket,
        remoteName: uri.remoteName,
      },
      { driver, transport, host, port, socket, remoteName },
      text,
    );
  }
  assert.equal(
    parseLibvirtUri('qemu+tls://kvm-1/system?pkipath=/etc/zenith/pki').pkiPath,
    '/etc/zenith/pki',
  );
});

test('bad URIs are refused with ZEN_CONFIG_INVALID naming the problem', () => {
  for (const bad of [
    '',
    'qemu',
    'http://example.com/',
    'esx://vcenter/',
    'qemu+ssh://root@kvm-1/system',
    'qemu+ftp://kvm-1/system',
    'qemu+unix://kvm-1/system',
    'qemu+tls:///system',
    'qemu:///system?socket=relative/path',
    'qemu+tls://kvm-1/system?socket=/run/x',
    'qemu:///system?mode=legacy',
    'qemu:///system with spaces',
    'qemu+tls://user@kvm-1/system',
  ])
    refused(() => parseLibvirtUri(bad), 'uri');
});

test('settings are checked once and normalised; unknown or misplaced ones are refused', () => {
  assert.deepEqual(validateLibvirtSettings({ uri: 'test+unix:///default' }), {
    uri: 'test+unix:///default',
    accelerator: 'auto',
    storagePool: 'default',
    shutdownTimeoutMs: 60_000,
    callTimeoutMs: 60_000,
  });
  const tls = validateLibvirtSettings({
    uri: 'qemu+tls://kvm-1/system',
    tlsCaFile: '/etc/pki/CA/cacert.pem',
    tlsCertFile: '/etc/pki/libvirt/clientcert.pem',
    migrationUri: 'qemu+tls://kvm-1.lan/system',
    migrationDataUri: 'tcp://10.0.0.5',
  });
  assert.equal(tls.migrationDataUri, 'tcp://10.0.0.5');
  refused(() => validateLibvirtSettings({}), 'uri');
  refused(() => validateLibvirtSettings({ uri: 'qemu:///system', colour: 'blue' }));
  refused(
    () => validateLibvirtSettings({ uri: 'qemu:///system', tlsCaFile: '/ca.pem' }),
    'tlsCaFile',
  );
  refused(
    () => validateLibvirtSettings({ uri: 'qemu+tls://h/system', tlsKeyFile: 'key.pem' }),
    'tlsKeyFile',
  );
  refused(
    () => validateLibvirtSettings({ uri: 'qemu:///system', accelerator: 'hvf' }),
    'accelerator',
  );
  refused(
    () => validateLibvirtSettings({ uri: 'qemu:///system', migrationUri: 'qemu:///system' }),
    'migrationUri',
  );
  refused(
    () => validateLibvirtSettings({ uri: 'qemu:///system', migrationDataUri: 'tcp://h/x' }),
    'migrationDataUri',
  );
  refused(
    () => validateLibvirtSettings({ uri: 'qemu:///system', callTimeoutMs: 5 }),
    'callTimeoutMs',
  );
});

test('the registry offers the libvirt family, not simulated, validating through it', () => {
  const family = new DriverRegistry().get('libvirt');
  assert.equal(family.simulated, false);
  refused(() => family.validate({ uri: 'vbox+ssh://h/session' }), 'uri');
  const driver = family.create(family.validate({ uri: 'test+unix:///default' }), null, {
    connectionId: 'conn_test',
    clock: { now: () => 0, sleep: async () => undefined },
    logger: { warn: () => undefined } as never,
    stateDir: '/nonexistent',
  });
  assert.equal(driver.info.type, 'libvirt');
  assert.ok(driver.info.capabilities.includes('vm.snapshot'));
  assert.ok(!driver.info.capabilities.includes('vm.migrate'), 'the test driver cannot migrate');
});
