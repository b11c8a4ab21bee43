/**
 * The pure parts VM monitoring relies on: vmMonitoring merged field by field from the policies in
 * force, and libvirt's stop reasons read as stop causes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { domainPower } from '../../../src/hypervisors/libvirt/domain-state.js';
import { DOMAIN_STATE } from '../../../src/protocols/libvirt/procedures/domain.js';
import { effectiveHa } from '../../../src/services/ha/ha-settings.js';
import { compilePolicy, mergeSettings } from '../../../src/services/policy/policy-document.js';

test('vmMonitoring merges field by field: a VM policy setting the limit keeps its cluster’s window', () => {
  const cluster = compilePolicy(
    'p1',
    {
      name: 'ha-prod',
      scope: { kind: 'cluster', id: 'c1' },
      settings: { ha: { enabled: true, vmMonitoring: { enabled: true, windowMinutes: 30 } } },
    },
    { kind: 'cluster', id: 'c1' },
  );
  const vm = compilePolicy(
    'p2',
    {
      name: 'db-limit',
      scope: { kind: 'vm', id: 'vm1' },
      settings: { ha: { vmMonitoring: { enabled: true, maxRestarts: 1 } } },
    },
    { kind: 'vm', id: 'vm1' },
  );
  assert.deepEqual(effectiveHa(mergeSettings([vm, cluster]).ha).vmMonitoring, {
    enabled: true,
    maxRestarts: 1,
    windowMs: 30 * 60_000,
  });
  // Without any: off, with Zenith's defaults.
  assert.deepEqual(effectiveHa(mergeSettings([]).ha).vmMonitoring, {
    enabled: false,
    maxRestarts: 3,
    windowMs: 60 * 60_000,
  });
});

test("libvirt's stop reasons as stop causes: only a QEMU that ended unasked or a guest panic read as restartable", () => {
  const cause = (state: number, reason: number) => domainPower(state, reason).stopCause;
  // virDomainShutoffReason: unknown 0, shutdown 1, destroyed 2, crashed 3, migrated 4, saved 5,
  // failed 6, from-snapshot 7, daemon 8; virDomainCrashedReason: panicked 1.
  assert.equal(cause(DOMAIN_STATE.shutoff, 3), 'crashed');
  assert.equal(cause(DOMAIN_STATE.crashed, 1), 'guest-panic');
  assert.equal(cause(DOMAIN_STATE.shutoff, 1), 'guest-shutdown');
  assert.equal(cause(DOMAIN_STATE.shutoff, 2), 'requested');
  assert.equal(cause(DOMAIN_STATE.shutoff, 5), 'requested');
  for (const reason of [0, 4, 6, 8]) assert.equal(cause(DOMAIN_STATE.shutoff, reason), null);
  assert.equal(cause(DOMAIN_STATE.running, 1), null, 'running: no stop cause');
});
