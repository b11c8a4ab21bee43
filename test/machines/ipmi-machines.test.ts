/**
 * Physical machines over IPMI, end to end through the API, against OpenIPMI's ipmi_sim (a real
 * IPMI 2.0 LAN peer) whose chassis control starts and kills a "machine" process: every power
 * action is checked on that process, not only on what the BMC says. Also: boot device, identify
 * light (and its fact: ipmi_sim does not report it, so the state Zenith set), sensors, fencing confirmed and refused when the BMC lies, virtual media refused (IPMI
 * has none), and bad BMCs (wrong password, nothing listening) giving coded errors without
 * holding up the rest of the server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  ok,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { startIpmiBmc, type IpmiBmc } from '../../src/testing/ipmi-bmc.js';
import { freeUdpPort } from '../../src/testing/ports.js';

describe('physical machines over IPMI', () => {
  let bmc: IpmiBmc;
  let s: TestServer;
  let admin: string;
  let machine: ApiAnswer;

  before(async () => {
    bmc = await startIpmiBmc({ sensors: { temperatureC: 44, watts: 250, fanRpm: 4800 } });
    s = await startTestServer();
    admin = await s.login();
    const connection = ok(
      await s.request('POST', '/connections', {
        token: admin,
        body: {
          name: 'bmc-node7',
          type: 'ipmi',
          settings: { host: bmc.host, port: bmc.port, username: bmc.username, pollSeconds: 1 },
          secret: bmc.password,
        },
      }),
      201,
    );
    assert.equal(connection.state, 'connected', connection.lastError);
    const hosts = ok(await s.request('GET', '/hosts?limit=100', { token: admin })).items;
    machine = hosts.find((h: ApiAnswer) => h.connectionId === connection.id);
    assert.ok(machine, JSON.stringify(hosts));
  });
  after(async () => {
    await s?.close();
    await bmc?.stop();
  });

  const act = async (path: string, body?: unknown) => {
    const task = ok(
      await s.request('POST', `/hosts/${machine.id}/${path}`, {
        token: admin,
        ...(body ? { body } : {}),
      }),
      202,
    );
    return s.waitForTask(admin, task.id, 60_000);
  };

  test('the BMC system is a bare-metal host with its FRU, firmware, GUID and power', async () => {
    assert.equal(machine.facts['bmc.protocol'], 'ipmi');
    assert.equal(machine.facts['hardware.serial'], bmc.fru.serial);
    assert.equal(machine.facts['hardware.vendor'], bmc.fru.vendor);
    assert.equal(machine.facts['hardware.model'], bmc.fru.model);
    assert.equal(machine.facts['hardware.smbiosUuid'], bmc.guid);
    assert.equal(machine.facts['hardware.bmcFirmware'], '2.31');
    assert.equal(machine.facts['hardware.power'], 'on');
    // ipmi_sim does not report the identify state, and Zenith has set none yet: unknown.
    assert.equal(machine.facts['bmc.identify'], null);
    assert.equal(machine.facts['bmc.identifySource'], null);
    assert.equal(machine.facts['bmc.media.image'], undefined, 'IPMI has no virtual media');
    assert.equal(machine.computed['host.mode'], 'bare-metal');
    const view = ok(await s.request('GET', `/hosts/${machine.id}/machine`, { token: admin }));
    assert.deepEqual([...view.capabilities].sort(), [
      'machine.boot',
      'machine.fence',
      'machine.identify',
      'machine.power',
    ]);
  });

  test('power off, on, cycle, reset and shutdown: each ends with the machine process gone or there', async () => {
    const first = await bmc.machinePid();
    assert.ok(first, 'the machine runs');
    let task = await act('power', { action: 'off' });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.equal(task.result.power, 'off');
    assert.equal(await bmc.machinePid(), undefined);
    task = await act('power', { action: 'on' });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    const second = await bmc.machinePid();
    assert.ok(second && second !== first);
    task = await act('power', { action: 'reset' });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    const third = await bmc.machinePid();
    assert.ok(third && third !== second, 'a reset restarts the machine');
    task = await act('power', { action: 'cycle' });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.equal(task.result.power, 'on');
    task = await act('power', { action: 'shutdown' });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.equal(await bmc.machinePid(), undefined);
    const calls = await bmc.chassisCalls();
    assert.ok(
      calls.some((c) => c.startsWith('set power 0')),
      calls.join('\n'),
    );
    assert.ok(
      calls.some((c) => c.startsWith('set shutdown')),
      calls.join('\n'),
    );
  });

  test('boot once from PXE, identify light, sensors; no virtual media over IPMI', async () => {
    let task = await act('boot', { device: 'pxe' });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.equal(await bmc.bootDevice(), 'pxe');
    const identify = async () => {
      const facts = ok(await s.request('GET', `/hosts/${machine.id}`, { token: admin })).facts;
      return [facts['bmc.identify'], facts['bmc.identifySource']];
    };
    task = await act('identify', { on: true });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    // ipmi_sim's chassis control is told "identify, force on"; the fact, when the task ends, is
    // the state Zenith set (ipmi_sim does not report it back).
    const lastIdentify = async () =>
      (await bmc.chassisCalls()).filter((c) => c.startsWith('set identify')).at(-1);
    assert.equal(await lastIdentify(), 'set identify 0 1');
    assert.deepEqual(await identify(), ['on', 'zenith']);
    task = await act('identify', { on: false });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.equal(await lastIdentify(), 'set identify 0 0');
    assert.deepEqual(await identify(), ['off', 'zenith']);
    const sensors = ok(await s.request('GET', `/hosts/${machine.id}/sensors`, { token: admin }));
    const power = sensors.sensors.find((r: ApiAnswer) => r.kind === 'power');
    assert.deepEqual([power?.value, power?.unit], [250, 'W']);
    const media = await s.request('POST', `/hosts/${machine.id}/media`, {
      token: admin,
      body: { image: 'http://images.example/x.iso' },
    });
    assert.equal(media.status, 422);
    assert.equal(media.body.error.code, 'ZEN_UNSUPPORTED');
  });

  test('fencing: confirmed off, and BMC_FENCE_UNCONFIRMED from a BMC that says yes and keeps it on', async () => {
    await act('power', { action: 'on' });
    const fenced = await act('fence');
    assert.equal(fenced.state, 'succeeded', JSON.stringify(fenced.error));
    assert.equal(await bmc.machinePid(), undefined);
    await act('power', { action: 'on' });
    await bmc.setLiar(true);
    try {
      const outcome = await s.plane.machines.fence(machine.id, 4000).then(
        () => 'confirmed',
        (error: { code?: string }) => error.code,
      );
      assert.equal(outcome, 'BMC_FENCE_UNCONFIRMED');
      assert.ok(await bmc.machinePid(), 'the liar kept the machine running');
    } finally {
      await bmc.setLiar(false);
    }
  });

  test('bad BMCs: a wrong password and a port nobody answers give coded errors, and the server keeps answering', async () => {
    const add = (name: string, port: number, password: string) =>
      s.request('POST', '/connections/test', {
        token: admin,
        body: {
          type: 'ipmi',
          settings: { host: '127.0.0.1', port, username: bmc.username, timeoutSeconds: 5 },
          secret: password,
        },
      });
    const pending = add('wrong', bmc.port, 'not-the-password');
    const silent = add('silent', await freeUdpPort(), bmc.password);
    // Meanwhile other requests are answered at once.
    const started = Date.now();
    ok(await s.request('GET', '/connections', { token: admin }));
    assert.ok(Date.now() - started < 2000);
    const [wrong, nobody] = await Promise.all([pending, silent]);
    assert.equal(wrong.status, 502, JSON.stringify(wrong.body));
    assert.equal(wrong.body.error.code, 'IPMI_AUTH_FAILED');
    assert.ok(nobody.status === 502 || nobody.status === 504, JSON.stringify(nobody.body));
    assert.match(nobody.body.error.code, /^IPMI_(UNREACHABLE|TIMEOUT)$/);
    assert.equal(JSON.stringify(wrong.body).includes('not-the-password'), false);
  });
});
