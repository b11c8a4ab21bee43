/**
 * A BMC through the zenith command, against a `zenith serve` process: add it as a redfish
 * connection (its password on standard input), read its machine, power it off and on, boot it
 * once from PXE, and link and unlink it by hand. The BMC is Zenith's Redfish service simulator
 * (a simulator of our own; real Redfish clients read it in test/protocols/redfish).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminPassword } from '../../src/testing/control-plane.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../src/testing/redfish-simulator.js';
import {
  cliRunner,
  startServerProcess,
  type ServerProcess,
} from '../../src/testing/server-process.js';

describe('physical machines through the zenith command', () => {
  let sim: RedfishSimulator;
  let server: ServerProcess;
  let dataDir: string;
  let zenith: ReturnType<typeof cliRunner>;
  const ok = async (args: string[], input?: string) => {
    const result = await zenith(args, input !== undefined ? { input } : {});
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    return result;
  };
  before(async () => {
    sim = await startRedfishSimulator({ machines: 1 });
    dataDir = mkdtempSync(join(tmpdir(), 'zenith-machines-cli-'));
    // Sensors sampled every 300 ms (`zenith serve --sensor-sample-seconds`, here from the environment).
    server = await startServerProcess({ dataDir, env: { ZENITH_SENSOR_SAMPLE_SECONDS: '0.3' } });
    zenith = cliRunner(server.url);
    await ok(['login', '--user', 'admin'], `${adminPassword}\n`);
  });
  after(async () => {
    await server?.kill();
    await sim?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('add a BMC, see its machine, power it off and on, boot once, link and unlink', async () => {
    const add = await ok(
      [
        'connections',
        'add',
        'rack1-bmc',
        'redfish',
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
    const serial = sim.machine('System1').serial;
    const list = await ok(['hosts', 'list']);
    assert.match(
      list.stdout,
      new RegExp(`${serial}\\s*│\\s*present\\s*│\\s*bare-metal\\s*│\\s*bmc:redfish`),
    );
    const bmc = await ok(['hosts', 'bmc', serial]);
    assert.match(bmc.stdout, /linked host\s+none \(bare metal\)/);
    assert.match(bmc.stdout, new RegExp(`SMBIOS UUID\\s+${sim.machine('System1').uuid}`, 'i'));
    assert.match(bmc.stdout, /│ power\s+│ 180 W/);
    await ok(['hosts', 'power', serial, 'off']);
    assert.equal(sim.machine('System1').power, 'Off');
    await ok(['hosts', 'power', serial, 'on']);
    assert.equal(sim.machine('System1').power, 'On');
    await ok(['hosts', 'boot', serial, 'pxe']);
    assert.deepEqual(sim.machine('System1').boot, { enabled: 'Once', target: 'Pxe' });
    const wrong = await zenith(['hosts', 'power', serial, 'explode']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /the action is one of on, shutdown, off, cycle, reset/);
    // A hypervisor host to link it to by hand (a simulated fleet's: nothing to match by itself).
    await ok([
      'connections',
      'add',
      'lab',
      'simulated',
      '--set',
      'hostsPerCluster=1',
      '--set',
      'vmsPerHost=0',
      '--set',
      'datacenters=1',
      '--set',
      'clustersPerDatacenter=1',
    ]);
    const hosts = JSON.parse((await ok(['--json', 'hosts', 'list'])).stdout);
    const local = (hosts.items ?? hosts).find(
      (h: { facts: Record<string, unknown> }) => h.facts['bmc.protocol'] === undefined,
    );
    assert.ok(local, JSON.stringify(hosts));
    const linked = await ok(['hosts', 'link', serial, local.name]);
    assert.match(linked.stderr, /linked to host_/);
    const shown = JSON.parse(
      (await ok(['--json', 'hosts', 'bmc', local.name, '--no-sensors'])).stdout,
    );
    assert.equal(shown.hostId, local.id);
    assert.equal(shown.link.how, 'manual');
    await ok(['hosts', 'unlink', local.name]);
    const after = JSON.parse((await ok(['--json', 'hosts', 'bmc', serial, '--no-sensors'])).stdout);
    assert.equal(after.hostId, null);
  });

  test("the machine's sampled power draw and energy over a period", async () => {
    const serial = sim.machine('System1').serial;
    sim.machine('System1').sensors.watts = 240;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const from = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const to = new Date().toISOString();
    const energy = JSON.parse(
      (await ok(['--json', 'hosts', 'energy', serial, '--from', from, '--to', to])).stdout,
    );
    // A constant 240 W: whatever the sample times, the average is exact and kWh follows it.
    assert.equal(energy.averageWatts, 240);
    assert.ok(energy.coveredMs > 1500, JSON.stringify(energy));
    assert.ok(Math.abs(energy.kWh - (240 * energy.coveredMs) / 3_600_000_000) < 1e-12);
    const shown = await ok(['hosts', 'energy', serial, '--from', from, '--to', to]);
    assert.match(shown.stdout, /average draw\s+240\.0 W/);
    assert.match(shown.stdout, new RegExp(`energy\\s+${energy.kWh.toFixed(6)} kWh`));
    const history = await ok([
      'hosts',
      'sensors',
      serial,
      '--from',
      from,
      '--to',
      to,
      '--step',
      '1',
    ]);
    assert.match(history.stdout, /240 W\s+│ 41 °C\s+│ 5400 RPM/);
    const wrong = await zenith(['hosts', 'energy', serial, '--from', 'yesterday-ish']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /--from 'yesterday-ish' is not a date/);
  });
});
