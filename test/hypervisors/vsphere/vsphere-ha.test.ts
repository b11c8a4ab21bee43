/**
 * vSphere HA's configuration as facts, from values shaped as the VIM decoder reads them (leaves
 * without xsi:type are text): the admission control policies vCenter has, the pre-6.5 failover
 * level, a host's state, and the VM overrides whose change must reach the VMs' facts. The driver
 * against the simulator is tested in test/ha/vsphere-ha.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  changedOverrides,
  clusterHaFacts,
  hostHaFacts,
  vmHaFacts,
  vmHaOverrides,
} from '../../../src/hypervisors/vsphere/vsphere-ha.js';
import { MoRef, type VimValue } from '../../../src/protocols/vim/vim-values.js';

const names: Record<string, string> = { 'host-1': 'esx-1', 'host-2': 'esx-2' };
const nameOf = (moref: string) => names[moref] ?? moref;
const config = (dasConfig: VimValue, dasVmConfig?: VimValue): VimValue => ({
  $type: 'ClusterConfigInfoEx',
  dasConfig,
  ...(dasVmConfig === undefined ? {} : { dasVmConfig }),
});

describe('vSphere HA facts', () => {
  test('a cluster whose configuration sets no dasConfig has HA off; none read gives no facts', () => {
    assert.deepEqual(clusterHaFacts(config(''), nameOf), { 'ha.vsphere.enabled': false });
    assert.deepEqual(clusterHaFacts(undefined, nameOf), {});
  });

  test('a percentage policy, with host and VM monitoring and the defaults', () => {
    const facts = clusterHaFacts(
      config({
        enabled: 'true',
        hostMonitoring: 'enabled',
        vmMonitoring: 'vmAndAppMonitoring',
        admissionControlEnabled: 'true',
        admissionControlPolicy: {
          $type: 'ClusterFailoverResourcesAdmissionControlPolicy',
          cpuFailoverResourcesPercent: '25',
          memoryFailoverResourcesPercent: '30',
        },
        defaultVmSettings: { restartPriority: 'medium', isolationResponse: 'shutdown' },
      }),
      nameOf,
    );
    assert.deepEqual(facts, {
      'ha.vsphere.enabled': true,
      'ha.vsphere.hostMonitoring': 'enabled',
      'ha.vsphere.vmMonitoring': 'vmAndAppMonitoring',
      'ha.vsphere.admissionControl': true,
      'ha.vsphere.admissionControlPolicy': 'resourcePercentage',
      'ha.vsphere.cpuFailoverPercent': 25,
      'ha.vsphere.memoryFailoverPercent': 30,
      'ha.vsphere.restartPriority': 'medium',
      'ha.vsphere.isolationResponse': 'shutdown',
    });
  });

  test('failover hosts are named; the failover level of dasConfig counts when the policy has none', () => {
    const facts = clusterHaFacts(
      config({
        enabled: 'true',
        failoverLevel: '2',
        admissionControlEnabled: 'false',
        admissionControlPolicy: {
          $type: 'ClusterFailoverHostAdmissionControlPolicy',
          failoverHosts: [new MoRef('HostSystem', 'host-1'), new MoRef('HostSystem', 'host-2')],
        },
      }),
      nameOf,
    );
    assert.equal(facts['ha.vsphere.admissionControl'], false);
    assert.equal(facts['ha.vsphere.admissionControlPolicy'], 'failoverHosts');
    assert.deepEqual(facts['ha.vsphere.failoverHosts'], ['esx-1', 'esx-2']);
    assert.equal(facts['ha.vsphere.hostFailuresToTolerate'], 2);
  });

  test("a host's state, and none when vSphere HA is not configured on it", () => {
    assert.deepEqual(hostHaFacts({ $type: 'ClusterDasFdmHostState', state: 'hostDown' }), {
      'ha.vsphere.hostState': 'hostDown',
    });
    assert.deepEqual(hostHaFacts(undefined), {});
  });

  test("a VM's own settings, and which VMs a changed configuration touches", () => {
    const vm = (value: string, settings: VimValue) => ({
      key: new MoRef('VirtualMachine', value),
      dasSettings: settings,
    });
    const before = config({ enabled: 'true' }, [
      vm('vm-1', { restartPriority: 'highest' }),
      vm('vm-2', { restartPriority: 'low', isolationResponse: 'none' }),
    ]);
    // One entry alone is not an array in a reply.
    const after = config({ enabled: 'true' }, vm('vm-2', { restartPriority: 'high' }));
    assert.deepEqual(vmHaFacts(vmHaOverrides(before).get('vm-2')), {
      'ha.vsphere.restartPriority': 'low',
      'ha.vsphere.isolationResponse': 'none',
    });
    assert.deepEqual(vmHaFacts(vmHaOverrides(after).get('vm-1')), {});
    assert.deepEqual(changedOverrides(before, after).sort(), ['vm-1', 'vm-2']);
    assert.deepEqual(changedOverrides(after, after), []);
  });
});
