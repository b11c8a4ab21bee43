/**
 * Physical hosts that are real: each is a `zenith agent` in its own PID and network namespace,
 * the "machine" its BMC starts on power-on and kills (agent and all) on power-off. One BMC is
 * OpenIPMI's ipmi_sim, the other Zenith's Redfish service simulator (a simulator of our own) whose
 * power hooks drive the machine. The Redfish machine reports the agent's NIC MAC and is linked to
 * the agent's host by itself; the IPMI machine is linked by hand. Powering a hypervisor host off
 * through the API ends its agent (the connection drops), powering it on brings the same host back;
 * fencing through the hypervisor host's name is confirmed and the agent is gone.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ok,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { startIpmiBmc, type IpmiBmc } from '../../src/testing/ipmi-bmc.js';
import { MachineProcess } from '../../src/testing/machine-process.js';
import { startPhysicalLab, type PhysicalLab } from '../../src/testing/physical-hosts.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../src/testing/redfish-simulator.js';
import { until } from '../../src/testing/wait.js';

describe('physical hosts: agents in namespaces powered by their BMCs', () => {
  let lab: PhysicalLab;
  let s: TestServer;
  let admin: string;
  let bmc: IpmiBmc;
  let sim: RedfishSimulator;
  let redfishMachine: MachineProcess;
  const baseDir = mkdtempSync(join(tmpdir(), 'zenith-physical-'));

  const hostState = async (name: string) => {
    const answer = await s.request('GET', `/hosts/${name}`, { token: admin });
    return answer.status === 200 ? answer.body : undefined;
  };
  const agentConnected = (name: string, connected: boolean) =>
    until(
      `agent host ${name} ${connected ? 'connected' : 'disconnected'}`,
      async () => {
        const host = await hostState(name);
        if (!host) return undefined;
        const connection = ok(
          await s.request('GET', `/connections/${host.connectionId}`, { token: admin }),
        );
        return (connection.state === 'connected') === connected ? connection : undefined;
      },
      60_000,
      200,
    );

  let image: { kernel: string; initrd: string };

  before(async () => {
    image = await ensureGuestImage();
    lab = await startPhysicalLab();
    s = await startTestServer({ listenHost: lab.gateway });
    admin = await s.login();
    const serverUrl = s.baseUrl;
    const token = async () =>
      ok(await s.request('POST', '/agents/enrollment-tokens', { token: admin, body: {} }), 201)
        .token as string;
    const hostA = await lab.addHost({
      name: 'phys-a',
      serverUrl,
      enrollmentToken: await token(),
      storageRoots: [join(baseDir, 'a-storage'), dirname(image.kernel)],
      baseDir,
    });
    const hostB = await lab.addHost({
      name: 'phys-b',
      serverUrl,
      enrollmentToken: await token(),
      storageRoots: [join(baseDir, 'b-storage'), dirname(image.kernel)],
      baseDir,
    });
    bmc = await startIpmiBmc({ machineCommand: hostA.machineCommand });
    redfishMachine = new MachineProcess(hostB.machineCommand);
    sim = await startRedfishSimulator({
      machines: 1,
      hooks: {
        powerOn: () => redfishMachine.start(),
        powerOff: () => redfishMachine.stop(),
      },
    });
    sim.machine('System1').macs = [hostB.mac];
    await redfishMachine.start();
    await agentConnected('phys-a', true);
    await agentConnected('phys-b', true);
    for (const body of [
      {
        name: 'bmc-a',
        type: 'ipmi',
        settings: { host: bmc.host, port: bmc.port, username: bmc.username, pollSeconds: 1 },
        secret: bmc.password,
      },
      {
        name: 'bmc-b',
        type: 'redfish',
        settings: {
          url: sim.url,
          username: sim.username,
          thumbprint: sim.thumbprint,
          pollSeconds: 1,
        },
        secret: sim.password,
      },
    ])
      assert.equal(
        ok(await s.request('POST', '/connections', { token: admin, body }), 201).state,
        'connected',
      );
  });
  after(async () => {
    try {
      await bmc?.stop();
      await redfishMachine?.stop();
      await sim?.close();
      await s?.close();
    } finally {
      await lab?.close();
      rmSync(baseDir, { recursive: true, force: true });
    }
  });

  test("the agent host reports its namespace's NIC, and the Redfish machine reporting that MAC is linked to it by itself", async () => {
    const host = await hostState('phys-b');
    assert.deepEqual(host.facts['hardware.nicMacs'], [sim.machine('System1').macs[0]]);
    const view = await until(
      'the link by MAC',
      async () => {
        const answer = await s.request('GET', '/hosts/phys-b/machine', { token: admin });
        return answer.status === 200 ? answer.body : undefined;
      },
      10_000,
    );
    assert.equal(view.link.how, 'mac');
    assert.equal(view.machine.facts['bmc.protocol'], 'redfish');
  });

  test('the IPMI machine, linked by hand, powers its agent host off and on again', async () => {
    const machines = ok(await s.request('GET', '/hosts?limit=100', { token: admin }))
      .items as ApiAnswer[];
    const ipmiMachine = machines.find((h) => h.facts['bmc.protocol'] === 'ipmi');
    ok(
      await s.request('PUT', `/hosts/${ipmiMachine.id}/machine-link`, {
        token: admin,
        body: { hostId: 'phys-a' },
      }),
    );
    const before = await hostState('phys-a');
    const off = ok(
      await s.request('POST', '/hosts/phys-a/power', { token: admin, body: { action: 'off' } }),
      202,
    );
    assert.equal((await s.waitForTask(admin, off.id, 60_000)).state, 'succeeded');
    assert.equal(await bmc.machinePid(), undefined, 'the machine is off');
    await agentConnected('phys-a', false);
    const on = ok(
      await s.request('POST', '/hosts/phys-a/power', { token: admin, body: { action: 'on' } }),
      202,
    );
    assert.equal((await s.waitForTask(admin, on.id, 60_000)).state, 'succeeded');
    await agentConnected('phys-a', true);
    const after = await hostState('phys-a');
    assert.equal(after.id, before.id, 'the same host came back (the agent kept its certificate)');
    assert.equal(after.computed['machine.hardware.power'], 'on');
  });

  test('power management: consolidation moves a running VM off a host, which is put in standby and powered off through its BMC; a placement that needs its room powers it on again', async () => {
    // One small running guest on each host: consolidation empties one of them.
    const vmIds: Record<string, string> = {};
    for (const host of ['phys-a', 'phys-b']) {
      const created = await s.waitForTask(
        admin,
        ok(
          await s.request('POST', '/vms', {
            token: admin,
            body: {
              name: `worker-${host}`,
              hostId: host,
              cpus: 1,
              memoryBytes: 96 * 2 ** 20,
              diskBytes: 0,
              options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
            },
          }),
          202,
        ).id,
        60_000,
      );
      assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
      vmIds[host] = created.result.vmId;
      const started = await s.waitForTask(
        admin,
        ok(await s.request('POST', `/vms/${vmIds[host]}/start`, { token: admin }), 202).id,
        60_000,
      );
      assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    }
    ok(
      await s.request('POST', '/policies', {
        token: admin,
        body: {
          name: 'power-saving',
          scope: { kind: 'global' },
          settings: { powerManagement: { enabled: true, minHostsOn: 1 } },
        },
      }),
      201,
    );
    const run = ok(
      await s.request('POST', '/placement/power-management', { token: admin, body: {} }),
      202,
    );
    const done = await s.waitForTask(admin, run.id, 180_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.result.consolidation.moves, 1, JSON.stringify(done.result));
    const steps = done.result.steps as ApiAnswer[];
    const off = steps.filter((step) => step.outcome === 'powered-off');
    const kept = steps.filter((step) => step.outcome === 'kept-on');
    assert.equal(off.length, 1, JSON.stringify(steps));
    assert.equal(kept.length, 1, JSON.stringify(steps));
    const standbyName = off[0].hostName as string;
    const awakeName = kept[0].hostName as string;
    // Both guests now run on the host that stayed on; the other one is off, its agent gone.
    for (const vmId of Object.values(vmIds)) {
      const vm = ok(await s.request('GET', `/vms/${vmId}`, { token: admin }));
      assert.equal(vm.computed['location.hostName'], awakeName);
      assert.equal(vm.facts['power.state'], 'running');
    }
    if (standbyName === 'phys-b') {
      assert.equal(redfishMachine.running, false);
      assert.equal(sim.machine('System1').power, 'Off');
    } else assert.equal(await bmc.machinePid(), undefined);
    await agentConnected(standbyName, false);
    const standby = await hostState(standbyName);
    assert.equal(standby.computed['host.mode'], 'standby');
    const preview = ok(
      await s.request('POST', '/placement/preview', {
        token: admin,
        body: { vm: { name: 'probe', cpus: 1, memoryBytes: 32 * 2 ** 20 }, topCandidates: 10 },
      }),
    );
    const rejected = preview.rejected.find((r: ApiAnswer) => r.hostId === standby.id);
    assert.match(JSON.stringify(rejected), /powered off by power management \(standby\)/);
    // A VM as big as a whole host: no room left on the awake one (its two guests), all of it on
    // the host in standby, which the creation powers on first.
    const capacity = (standby.facts['cpu.cores'] as number) * 4;
    const create = ok(
      await s.request('POST', '/vms', {
        token: admin,
        body: { name: 'needs-room', cpus: capacity, memoryBytes: 32 * 2 ** 20, diskBytes: 2 ** 20 },
      }),
      202,
    );
    const created = await s.waitForTask(admin, create.id, 180_000);
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    assert.equal(created.result.hostId, standby.id);
    await agentConnected(standbyName, true);
    if (standbyName === 'phys-b') assert.equal(sim.machine('System1').power, 'On');
    else assert.ok(await bmc.machinePid());
    assert.equal((await hostState(standbyName)).computed['host.mode'], undefined, 'out of standby');
    const audit = ok(await s.request('GET', '/audit?limit=300', { token: admin }))
      .items as ApiAnswer[];
    const actions = audit.map((r) => r.action);
    assert.ok(actions.includes('host.powerManagement'), actions.join(' '));
    assert.ok(actions.filter((a) => a === 'host.machine').length >= 2, actions.join(' '));
    state.vmIds = Object.values(vmIds);
    state.bigVmId = created.result.vmId as string;
  });

  const state: { vmIds: string[]; bigVmId?: string } = { vmIds: [] };
  const runPowerManagement = async () => {
    const done = await s.waitForTask(
      admin,
      ok(await s.request('POST', '/placement/power-management', { token: admin, body: {} }), 202)
        .id,
      180_000,
    );
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    return done.result as { steps: ApiAnswer[]; balance?: ApiAnswer; consolidation: ApiAnswer };
  };
  const hostOf = async (vmId: string) =>
    ok(await s.request('GET', `/vms/${vmId}`, { token: admin })).computed['location.hostName'];
  const isOff = async (name: string) =>
    name === 'phys-b' ? !redfishMachine.running : (await bmc.machinePid()) === undefined;

  test('an evacuation with no room on the hosts that are on powers a host in standby on and moves the VMs there', async () => {
    assert.ok(state.bigVmId, 'runs after the power management test');
    // The big VM goes; a run of power management puts the host it leaves empty back in standby.
    const stop = await s.request('POST', `/vms/${state.bigVmId}/stop`, { token: admin });
    if (stop.status === 202) await s.waitForTask(admin, stop.body.id, 60_000);
    const removed = ok(await s.request('DELETE', `/vms/${state.bigVmId}`, { token: admin }), 202);
    assert.equal((await s.waitForTask(admin, removed.id, 60_000)).state, 'succeeded');
    const result = await runPowerManagement();
    const off = result.steps.filter((step) => step.outcome === 'powered-off');
    assert.equal(off.length, 1, JSON.stringify(result.steps));
    const standbyName = off[0].hostName as string;
    const busyName = standbyName === 'phys-a' ? 'phys-b' : 'phys-a';
    await agentConnected(standbyName, false);
    for (const vmId of state.vmIds) assert.equal(await hostOf(vmId), busyName);

    // Maintenance on the busy host: its two guests fit only on the host in standby.
    const task = ok(await s.request('POST', `/hosts/${busyName}/evacuate`, { token: admin }), 202);
    const done = await s.waitForTask(admin, task.id, 240_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    const plan = ok(
      await s.request('GET', `/placement/plans/${task.params.planId}`, { token: admin }),
    );
    assert.equal(plan.wakes?.length, 1, JSON.stringify(plan));
    assert.equal(plan.wakes[0].hostName, standbyName);
    assert.match(
      plan.wakes[0].reason,
      /in standby; powered on for worker-phys-[ab], worker-phys-[ab]/,
    );
    await agentConnected(standbyName, true);
    assert.equal(await isOff(standbyName), false);
    for (const vmId of state.vmIds) {
      const vm = ok(await s.request('GET', `/vms/${vmId}`, { token: admin }));
      assert.equal(vm.computed['location.hostName'], standbyName);
      assert.equal(vm.facts['power.state'], 'running', 'live-migrated, still running');
    }
    assert.equal((await hostState(standbyName)).computed['host.mode'], undefined, 'out of standby');
    assert.equal((await hostState(busyName)).computed['host.mode'], 'maintenance');
    ok(await s.request('POST', `/hosts/${busyName}/exit-maintenance`, { token: admin }));
  });

  test('power management wakes a host in standby when a host that is on runs above its high load, and balances onto it', async () => {
    // The guests' host is on and busy; the other, empty, is powered off first.
    const busyName = (await hostOf(state.vmIds[0]!)) as string;
    const idleName = busyName === 'phys-a' ? 'phys-b' : 'phys-a';
    const first = await runPowerManagement();
    assert.deepEqual(
      first.steps.filter((step) => step.outcome === 'powered-off').map((step) => step.hostName),
      [idleName],
      JSON.stringify(first.steps),
    );
    await agentConnected(idleName, false);
    // Two one-vCPU guests on a host with no CPU overcommit: its load is 2 / cpu.cores; the high
    // load is set at half of that.
    const cores = (await hostState(busyName)).facts['cpu.cores'] as number;
    const highLoad = Math.max(0.1, Math.floor((100 * 2) / cores / 2) / 100);
    assert.ok(2 / cores > highLoad, `this test needs at most 10 cores (the host has ${cores})`);
    const policies = ok(await s.request('GET', '/policies', { token: admin })).items as ApiAnswer[];
    const policy = policies.find((p) => p.name === 'power-saving')!;
    ok(
      await s.request('PUT', `/policies/${policy.id}`, {
        token: admin,
        body: {
          name: 'power-saving',
          scope: { kind: 'global' },
          settings: {
            cpuOvercommit: 1,
            powerManagement: { enabled: true, minHostsOn: 1, highLoad },
          },
        },
      }),
    );
    const second = await runPowerManagement();
    const on = second.steps.filter((step) => step.outcome === 'powered-on');
    assert.deepEqual(
      on.map((step) => step.hostName),
      [idleName],
      JSON.stringify(second.steps),
    );
    assert.match(
      on[0].reason as string,
      new RegExp(`${busyName} at \\d+ % \\(high load ${Math.round(highLoad * 100)} %\\)`),
    );
    assert.equal(second.consolidation, null, 'a run that wakes a host consolidates nothing');
    assert.ok((second.balance?.moves as number) >= 1, JSON.stringify(second));
    await agentConnected(idleName, true);
    assert.equal(await isOff(idleName), false);
    const hosts = await Promise.all(state.vmIds.map(hostOf));
    assert.deepEqual(new Set(hosts), new Set(['phys-a', 'phys-b']), 'one guest on each host');
    // The guests stop here: the fencing test powers phys-b off.
    for (const vmId of state.vmIds) {
      const stop = await s.request('POST', `/vms/${vmId}/stop`, { token: admin });
      if (stop.status === 202) await s.waitForTask(admin, stop.body.id, 60_000);
    }
  });

  test('fencing the hypervisor host by name powers its machine off, confirmed, and its agent is gone', async () => {
    const task = ok(await s.request('POST', '/hosts/phys-b/fence', { token: admin }), 202);
    const done = await s.waitForTask(admin, task.id, 60_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(redfishMachine.running, false);
    assert.equal(sim.machine('System1').power, 'Off');
    await agentConnected('phys-b', false);
  });
});
