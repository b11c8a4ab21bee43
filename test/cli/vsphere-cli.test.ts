import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminPassword } from '../../src/testing/control-plane.js';
import {
  cliRunner,
  startServerProcess,
  type ServerProcess,
} from '../../src/testing/server-process.js';
import {
  startVsphereSimulator,
  type VsphereSimulator,
} from '../../src/testing/vsphere-simulator.js';

describe('a vCenter through the zenith command', () => {
  let sim: VsphereSimulator;
  let server: ServerProcess;
  let dataDir: string;
  let zenith: ReturnType<typeof cliRunner>;
  const show = async (vm: string) => {
    const result = await zenith(['--json', 'vms', 'show', vm]);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout);
  };
  const ok = async (args: string[], input?: string) => {
    const result = await zenith(args, input !== undefined ? { input } : {});
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    return result;
  };
  before(async () => {
    sim = await startVsphereSimulator({
      clustersPerDatacenter: 1,
      hostsPerCluster: 2,
      standaloneHostsPerDatacenter: 0,
      vmsPerPool: 2,
      datastores: 2,
    });
    dataDir = mkdtempSync(join(tmpdir(), 'zenith-vsphere-cli-'));
    server = await startServerProcess({ dataDir });
    zenith = cliRunner(server.url);
    await ok(['login', '--user', 'admin'], `${adminPassword}\n`);
  });
  after(async () => {
    await server.kill();
    await sim.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('add the vCenter with its password on standard input, and list its VMs', async () => {
    const add = await ok(
      [
        'connections',
        'add',
        'vc',
        'vsphere',
        '--set',
        `url=${sim.url}`,
        '--set',
        `username=${sim.username}`,
        '--set',
        `thumbprint=${sim.thumbprint}`,
        '--secret-stdin',
      ],
      `${sim.password}\n`,
    );
    assert.match(add.stderr, /is connected/);
    const table = await ok(['vms', 'list']);
    assert.match(table.stdout, /DC0_C0_RP0_VM0/);
    assert.match(table.stdout, /DC0_C0_RP0_VM1/);
  });

  test('stop, reconfigure, rename, move to another datastore, snapshot, clone, create from a template and delete', async () => {
    await ok(['vms', 'stop', 'DC0_C0_RP0_VM0']);
    assert.equal((await show('DC0_C0_RP0_VM0')).facts['power.state'], 'stopped');
    await ok(['vms', 'reconfigure', 'DC0_C0_RP0_VM0', '--cpus', '2', '--memory', '1GiB']);
    const resized = await show('DC0_C0_RP0_VM0');
    assert.equal(resized.facts['cpu.count'], 2);
    assert.equal(resized.facts['memory.bytes'], 1024 ** 3);
    await ok(['vms', 'rename', 'DC0_C0_RP0_VM0', 'db-1']);
    assert.equal((await show('db-1')).id, resized.id);
    // The simulator names its datastores LocalDS_0, LocalDS_1…
    const [current] = resized.facts['storage.datastores'];
    const other = { name: current === 'LocalDS_0' ? 'LocalDS_1' : 'LocalDS_0' };
    await ok(['vms', 'migrate', 'db-1', '--datastore', other.name]);
    assert.deepEqual((await show('db-1')).facts['storage.datastores'], [other.name]);
    await ok(['vms', 'snapshot', 'create', 'db-1', 'clean']);
    assert.match((await ok(['vms', 'snapshot', 'list', 'db-1'])).stdout, /clean/);
    await ok(['vms', 'clone', 'db-1', 'db-2']);
    assert.equal((await show('db-2')).facts['power.state'], 'stopped');
    const host = resized.computed['location.hostName'];
    await ok([
      'vms',
      'create',
      'db-3',
      '--host',
      host,
      '--cpus',
      '1',
      '--memory',
      '512MiB',
      '--disk',
      '0',
      '--template',
      'db-2',
    ]);
    assert.equal((await show('db-3')).facts['memory.bytes'], 512 * 1024 ** 2);
    await ok(['vms', 'delete', 'db-3']);
    assert.equal((await show('db-3')).status, 'missing');
  });
});
