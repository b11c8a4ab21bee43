import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { processAlive } from '../../../src/core/process.js';
import { IpmiClient } from '../../../src/protocols/ipmi/ipmi-client.js';
import { startIpmiBmc, type IpmiBmc } from '../../../src/testing/ipmi-bmc.js';
import { until } from '../../../src/testing/wait.js';

const clientOf = (bmc: IpmiBmc, overrides: Partial<{ password: string; username: string }> = {}) =>
  new IpmiClient({
    host: bmc.host,
    port: bmc.port,
    username: overrides.username ?? bmc.username,
    password: overrides.password ?? bmc.password,
  });

describe('the IPMI client against ipmi_sim', () => {
  let bmc: IpmiBmc;
  let ipmi: IpmiClient;
  before(async () => {
    bmc = await startIpmiBmc({ sensors: { temperatureC: 47, watts: 314, fanRpm: 6200 } });
    ipmi = clientOf(bmc);
  });
  after(async () => {
    await bmc.stop();
  });

  test('reads the FRU, the firmware, the system GUID and the sensors the test wrote', async () => {
    assert.deepEqual(await ipmi.fru(), {
      vendor: bmc.fru.vendor,
      model: bmc.fru.model,
      serial: bmc.fru.serial,
      partNumber: `${bmc.fru.model}-PN`,
    });
    const mc = await ipmi.mcInfo();
    assert.equal(mc.firmwareVersion, '2.31');
    assert.equal(mc.ipmiVersion, '2.0');
    assert.equal(await ipmi.guid(), bmc.guid);
    const byName = async () =>
      Object.fromEntries((await ipmi.sensors()).map((s) => [s.name, [s.kind, s.value, s.unit]]));
    assert.deepEqual(await byName(), {
      'CPU Temp': ['temperature', 47, 'degrees C'],
      'Pwr Consumption': ['power', 314, 'Watts'],
      Fan1: ['fan', 6200, 'RPM'],
    });
    await bmc.setSensors({ temperatureC: 71, watts: 96 });
    // ipmi_sim reads the files once a second.
    await until(
      'the new sensor values',
      async () => {
        const now = await byName();
        return now['CPU Temp']?.[1] === 71 && now['Pwr Consumption']?.[1] === 96 ? now : undefined;
      },
      10_000,
      250,
    );
  });

  test('power off kills the machine, power on starts a new one, and the state reads back', async () => {
    const first = await bmc.machinePid();
    assert.ok(first && processAlive(first));
    assert.equal(await ipmi.powerState(), 'on');
    await ipmi.powerOff();
    assert.equal(processAlive(first), false, 'the machine process is gone');
    assert.equal(await bmc.machinePid(), undefined);
    assert.equal(await ipmi.powerState(), 'off');
    await ipmi.powerOn();
    const second = await bmc.machinePid();
    assert.ok(second && second !== first && processAlive(second));
    assert.equal(await ipmi.powerState(), 'on');
  });

  test('cycle and reset end the running machine and start a new one; soft off stops it', async () => {
    const before = await bmc.machinePid();
    assert.ok(before);
    await ipmi.reset();
    const afterReset = await bmc.machinePid();
    assert.ok(afterReset && afterReset !== before && !processAlive(before));
    await ipmi.powerCycle();
    assert.equal(processAlive(afterReset), false, 'the cycle powered the machine off');
    // ipmi_sim powers on again about a second after the off of a cycle.
    const afterCycle = await until(
      'the machine after the cycle',
      () => bmc.machinePid(),
      10_000,
      100,
    );
    assert.notEqual(afterCycle, afterReset);
    assert.equal(await ipmi.powerState(), 'on');
    await ipmi.softOff();
    assert.equal(processAlive(afterCycle), false);
    assert.equal(await ipmi.powerState(), 'off');
    await ipmi.powerOn();
  });

  test('a one-time boot device reaches the chassis, and identify lights the LED', async () => {
    assert.equal(await bmc.bootDevice(), 'none');
    // ipmi_sim calls the hard disk 'default' (boot device selector 2).
    const expected = { pxe: 'pxe', disk: 'default', cdrom: 'cdrom', bios: 'bios' } as const;
    for (const [device, seen] of Object.entries(expected)) {
      await ipmi.bootOnce(device as keyof typeof expected);
      assert.equal(await bmc.bootDevice(), seen);
    }
    await ipmi.identify(15);
    assert.ok((await bmc.chassisCalls()).includes('set identify 15 0'));
  });

  test('fencing powers off and confirms the machine is off', async () => {
    await ipmi.powerOn();
    const pid = await bmc.machinePid();
    assert.ok(pid);
    const result = await ipmi.fence({ deadlineMs: 10_000, pollIntervalMs: 200 });
    assert.equal(processAlive(pid), false);
    assert.equal(await ipmi.powerState(), 'off');
    assert.ok(result.polls >= 1 && result.offRequests === 1, JSON.stringify(result));
    await ipmi.powerOn();
  });

  test('fencing a BMC that answers power-off but leaves the machine on fails with BMC_FENCE_UNCONFIRMED', async () => {
    await bmc.setLiar(true);
    try {
      const pid = await bmc.machinePid();
      assert.ok(pid);
      const started = Date.now();
      await assert.rejects(ipmi.fence({ deadlineMs: 3000, pollIntervalMs: 300 }), (error) => {
        assert.equal((error as { code?: string }).code, 'BMC_FENCE_UNCONFIRMED');
        const details = (error as { details: Record<string, unknown> }).details;
        assert.equal(details.lastState, 'on');
        assert.equal(details.offAccepted, true);
        return true;
      });
      assert.ok(Date.now() - started < 8000, 'the deadline ended it');
      assert.ok(processAlive(pid), 'the liar kept the machine running');
    } finally {
      await bmc.setLiar(false);
    }
  });
});

describe('several ipmi_sim BMCs at once', () => {
  const bmcs: IpmiBmc[] = [];
  after(async () => {
    await Promise.all(bmcs.map((b) => b.stop()));
  });

  test('each powers only its own machine, and reports its own sensors', async () => {
    for (const temperatureC of [30, 40, 50])
      bmcs.push(await startIpmiBmc({ sensors: { temperatureC } }));
    assert.equal(new Set(bmcs.map((b) => b.port)).size, 3);
    const pids = await Promise.all(bmcs.map((b) => b.machinePid()));
    await clientOf(bmcs[1]!).powerOff();
    assert.deepEqual(
      pids.map((pid) => processAlive(pid!)),
      [true, false, true],
    );
    const temperatures = await Promise.all(
      bmcs.map(
        async (b) => (await clientOf(b).sensors()).find((s) => s.kind === 'temperature')?.value,
      ),
    );
    assert.deepEqual(temperatures, [30, 40, 50]);
  });
});

/** The processes (host pids) living in the PID namespace of `pid`. */
function processesInNamespaceOf(pid: number): number[] {
  const namespace = readlinkSync(`/proc/${pid}/ns/pid`);
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((p) => {
      try {
        return readlinkSync(`/proc/${p}/ns/pid`) === namespace && processAlive(p);
      } catch {
        return false;
      }
    });
}

describe('a machine in its own PID namespace (the shape of a later agent host)', () => {
  let bmc: IpmiBmc;
  before(async () => {
    bmc = await startIpmiBmc({
      machineCommand: [
        'unshare',
        '--pid',
        '--fork',
        '--kill-child',
        '--mount-proc',
        'sh',
        '-c',
        'sleep 1000 & sleep 1000',
      ],
    });
  });
  after(async () => {
    await bmc.stop();
  });

  test('power off leaves no process of the namespace alive; power on makes a new namespace', async () => {
    const unshare = await bmc.machinePid();
    assert.ok(unshare);
    const init = await until('the namespace init', async () => {
      const children = readFileSync(`/proc/${unshare}/task/${unshare}/children`, 'utf8').trim();
      return children ? Number(children.split(' ')[0]) : undefined;
    });
    const inside = await until('both sleeps of the machine', async () => {
      const pids = processesInNamespaceOf(init);
      return pids.length === 3 ? pids : undefined; // sh and its two sleeps
    });
    assert.notEqual(readlinkSync(`/proc/${init}/ns/pid`), readlinkSync('/proc/self/ns/pid'));
    const ipmi = clientOf(bmc);
    await ipmi.powerOff();
    // The namespace's init died with the power: the kernel kills and reaps the rest a moment
    // later (one was still there, a zombie, when read at once).
    await until(
      'every process of the namespace gone',
      async () => inside.every((p) => !processAlive(p)) || undefined,
      5000,
      50,
    ).catch((error: unknown) => {
      throw new Error(
        `${(error as Error).message}: ${inside.filter((p) => processAlive(p)).join(' ')}`,
      );
    });
    await ipmi.powerOn();
    const again = await bmc.machinePid();
    assert.ok(again && again !== unshare);
  });
});

describe('bad BMCs give coded errors', () => {
  let bmc: IpmiBmc;
  let silent: Socket;
  let silentPort: number;
  before(async () => {
    bmc = await startIpmiBmc();
    silent = createSocket('udp4');
    silent.on('message', () => undefined); // takes every request, answers none
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
    silentPort = silent.address().port;
  });
  after(async () => {
    await bmc.stop();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  test('a wrong password or an unknown user is IPMI_AUTH_FAILED, and the message does not hold the password', async () => {
    await assert.rejects(clientOf(bmc, { password: 'not-the-password' }).powerState(), (error) => {
      assert.equal((error as { code?: string }).code, 'IPMI_AUTH_FAILED');
      assert.ok(!JSON.stringify({ error, message: String(error) }).includes('not-the-password'));
      return true;
    });
    await assert.rejects(clientOf(bmc, { username: 'nobody' }).powerState(), {
      code: 'IPMI_AUTH_FAILED',
    });
  });

  test('a peer that never answers is IPMI_UNREACHABLE after ipmitool gives up, or IPMI_TIMEOUT at our deadline', async () => {
    const quiet = (timeoutMs: number) =>
      new IpmiClient({
        host: '127.0.0.1',
        port: silentPort,
        username: 'admin',
        password: 'x',
        answerTimeoutSeconds: 1,
        retries: 1,
        timeoutMs,
      });
    await assert.rejects(quiet(15_000).powerState(), { code: 'IPMI_UNREACHABLE' });
    const started = Date.now();
    await assert.rejects(quiet(400).powerState(), { code: 'IPMI_TIMEOUT' });
    assert.ok(Date.now() - started < 3000);
  });

  test('a missing ipmitool is IPMI_TOOL_MISSING', async () => {
    const client = new IpmiClient({
      host: bmc.host,
      port: bmc.port,
      username: bmc.username,
      password: bmc.password,
      command: 'ipmitool-not-installed-here',
    });
    await assert.rejects(client.powerState(), { code: 'IPMI_TOOL_MISSING' });
  });

  test('fencing a BMC that does not answer fails with BMC_FENCE_UNCONFIRMED and says why', async () => {
    const client = new IpmiClient({
      host: '127.0.0.1',
      port: silentPort,
      username: 'admin',
      password: 'x',
      answerTimeoutSeconds: 1,
      retries: 1,
      timeoutMs: 1500,
    });
    await assert.rejects(client.fence({ deadlineMs: 2000, pollIntervalMs: 200 }), (error) => {
      const e = error as { code?: string; details: Record<string, unknown> };
      assert.equal(e.code, 'BMC_FENCE_UNCONFIRMED');
      assert.equal(e.details.offAccepted, false);
      assert.match(
        String((e.details.lastError as { code: string }).code),
        /^IPMI_(TIMEOUT|UNREACHABLE)$/,
      );
      return true;
    });
  });

  test('the password reaches ipmitool through its environment, never its arguments', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zenith-ipmitool-argv-'));
    try {
      const fake = join(dir, 'ipmitool');
      await writeFile(
        fake,
        `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/argv"\nprintf '%s' "$IPMI_PASSWORD" > "${dir}/env"\necho "Chassis Power is on"\n`,
      );
      await chmod(fake, 0o755);
      const client = new IpmiClient({
        host: '192.0.2.1',
        username: 'admin',
        password: 'sw0rdfish-42',
        command: fake,
      });
      assert.equal(await client.powerState(), 'on');
      const argv = (await readFile(join(dir, 'argv'), 'utf8')).split('\n');
      assert.ok(!argv.some((a) => a.includes('sw0rdfish-42')));
      assert.deepEqual(argv.slice(0, 4), ['-I', 'lanplus', '-C', '3']);
      assert.ok(argv.includes('-E'));
      assert.equal(await readFile(join(dir, 'env'), 'utf8'), 'sw0rdfish-42');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
