/**
 * High availability against real peers: two physical hosts, each a `zenith agent` in its own PID
 * and network namespace (src/testing/physical-hosts.ts) with a shared storage directory both see;
 * host A's machine is behind a BMC — Zenith's Redfish service simulator, a simulator of our own,
 * whose power hooks start and kill the namespace — linked to A's agent host by its NIC's MAC.
 * HA is enabled by a global policy. Host A crashes (everything in its namespace killed at once):
 * Zenith declares it failed, fences it through the BMC (power read back off), and runs its two
 * running guests (tiny TCG guests, their disks on the shared storage) on host B from their stored
 * descriptions — higher priority first — with their ids; their location history says failover.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  adminPassword,
  ok,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { consoleTicks } from '../../src/testing/guest-console.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { MachineProcess } from '../../src/testing/machine-process.js';
import { cliRunner } from '../../src/testing/server-process.js';
import {
  startPhysicalLab,
  type PhysicalHost,
  type PhysicalLab,
} from '../../src/testing/physical-hosts.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../src/testing/redfish-simulator.js';
import { until } from '../../src/testing/wait.js';

describe('high availability: a crashed host’s VMs run again on another host', () => {
  let lab: PhysicalLab;
  let s: TestServer;
  let admin: string;
  let sim: RedfishSimulator;
  const machines: Record<string, MachineProcess> = {};
  const physical: Record<string, PhysicalHost> = {};
  const baseDir = mkdtempSync(join(tmpdir(), 'zenith-ha-'));
  const shared = join(baseDir, 'shared');
  let image: { kernel: string; initrd: string };

  const get = async (path: string) => ok(await s.request('GET', path, { token: admin }));
  const connected = (name: string) =>
    until(
      `agent host ${name} connected`,
      async () => {
        const host = await s.request('GET', `/hosts/${name}`, { token: admin });
        if (host.status !== 200) return undefined;
        const connection = await get(`/connections/${host.body.connectionId}`);
        return connection.state === 'connected' ? host.body : undefined;
      },
      60_000,
      200,
    );

  before(async () => {
    image = await ensureGuestImage();
    mkdirSync(shared, { recursive: true });
    lab = await startPhysicalLab();
    s = await startTestServer({ listenHost: lab.gateway, ha: { graceMs: 1000, tickMs: 250 } });
    admin = await s.login();
    const hosts = [];
    for (const name of ['ha-a', 'ha-b', 'ha-c', 'ha-d']) {
      const token = ok(
        await s.request('POST', '/agents/enrollment-tokens', { token: admin, body: {} }),
        201,
      ).token as string;
      // The shared directory first: the guests' disks go there, where both hosts see them.
      const host = await lab.addHost({
        name,
        serverUrl: s.baseUrl,
        enrollmentToken: token,
        storageRoots: [shared, dirname(image.kernel)],
        baseDir,
      });
      machines[name] = new MachineProcess(host.machineCommand);
      physical[name] = host;
      hosts.push(host);
    }
    sim = await startRedfishSimulator({
      machines: 1,
      hooks: {
        powerOn: () => machines['ha-a']!.start(),
        powerOff: () => machines['ha-a']!.stop(),
      },
    });
    sim.machine('System1').macs = [hosts[0]!.mac];
    for (const machine of Object.values(machines)) await machine.start();
    for (const name of Object.keys(machines)) await connected(name);
    ok(
      await s.request('POST', '/connections', {
        token: admin,
        body: {
          name: 'bmc-a',
          type: 'redfish',
          settings: {
            url: sim.url,
            username: sim.username,
            thumbprint: sim.thumbprint,
            pollSeconds: 1,
            fenceDeadlineSeconds: 6,
          },
          secret: sim.password,
        },
      }),
      201,
    );
    await until('ha-a linked to its machine', async () =>
      typeof (await get('/hosts/ha-a')).computed['machine.id'] === 'string' ? true : undefined,
    );
  });
  after(async () => {
    try {
      // A cut network would hold the server's close on its channels.
      for (const host of Object.values(physical)) await lab.restoreNetwork(host);
      await sim?.close();
      for (const machine of Object.values(machines)) await machine.stop();
      await s?.close();
    } finally {
      await lab?.close();
      rmSync(baseDir, { recursive: true, force: true });
    }
  });

  const vmIds: Record<string, string> = {};
  const failoverOf = (hostName: string) =>
    until(
      `the failover of ${hostName} to finish`,
      async () => {
        const items = (await get('/ha/failovers')).items as ApiAnswer[];
        const latest = items.find((f) => f.hostName === hostName);
        return latest?.state === 'done' ? latest : undefined;
      },
      90_000,
      200,
    ).catch(async (error: unknown) => {
      // What HA saw, for whoever reads the failure.
      const state = JSON.stringify({
        ha: await get('/ha'),
        failovers: await get('/ha/failovers'),
        tasks: await get('/tasks?limit=5'),
      });
      throw new Error(`${(error as Error).message}: ${state}`);
    });
  const whereIs = async (vmId: string) =>
    (await get(`/vms/${vmId}`)).computed['location.hostName'] as string;

  test('host A crashes: it is declared failed, fenced through its BMC, and its protected VMs run on other hosts, by order group and highest priority first', async (t) => {
    for (const name of ['web', 'db', 'cache']) {
      const created = await s.waitForTask(
        admin,
        ok(
          await s.request('POST', '/vms', {
            token: admin,
            body: {
              name,
              hostId: 'ha-a',
              cpus: 1,
              memoryBytes: 96 * 2 ** 20,
              diskBytes: 8 * 2 ** 20,
              options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
            },
          }),
          202,
        ).id,
        60_000,
      );
      assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
      vmIds[name] = created.result.vmId as string;
      const started = await s.waitForTask(
        admin,
        ok(await s.request('POST', `/vms/${vmIds[name]}/start`, { token: admin }), 202).id,
        60_000,
      );
      assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    }
    // HA on everywhere; the database restarts first; the cache, in the second order group, only
    // once both others run — though its priority is the highest.
    for (const body of [
      {
        name: 'ha-everywhere',
        scope: { kind: 'global' },
        settings: {
          ha: {
            enabled: true,
            failureDetectionSeconds: 3,
            selfFenceSeconds: 3,
            isolationResponse: 'power-off',
          },
        },
      },
      {
        name: 'db-first',
        scope: { kind: 'vm', id: vmIds.db },
        settings: { ha: { restartPriority: 'highest' } },
      },
      {
        name: 'cache-after',
        scope: { kind: 'vm', id: vmIds.cache },
        settings: { ha: { restartPriority: 'highest', restartOrder: 2 } },
      },
    ])
      ok(await s.request('POST', '/policies', { token: admin, body }), 201);
    const protectedNow = await until(
      'both VMs protected (described)',
      async () => {
        const vms = (await get('/ha/vms')).items as ApiAnswer[];
        const ours = vms.filter((vm) => Object.values(vmIds).includes(vm.vmId));
        return ours.length === 3 && ours.every((vm) => vm.state === 'protected') ? ours : undefined;
      },
      30_000,
      250,
    );
    assert.equal(protectedNow.find((vm) => vm.vmId === vmIds.db).priority, 'highest');
    const status = await get('/ha');
    const hostA = status.hosts.find((h: ApiAnswer) => h.name === 'ha-a');
    assert.deepEqual([hostA.state, hostA.fencing], ['healthy', 'bmc']);
    const before = ok(await s.request('GET', `/vms/${vmIds.web}`, { token: admin }));
    assert.equal((await consoleTicks(s, admin, vmIds.web!, 1)).length, 1, 'the guest runs on A');

    // The crash: everything in A's namespaces dies at once (the BMC still reads it on).
    const crashedAt = Date.now();
    await machines['ha-a']!.stop();
    const failover = await failoverOf('ha-a');
    const recoveredAt = Date.now();
    assert.equal(failover.hostName, 'ha-a');
    assert.equal(failover.fenceMethod, 'bmc');
    assert.equal(sim.machine('System1').power, 'Off', 'fenced: the BMC powered it off');
    assert.deepEqual(
      failover.restarts.map((r: ApiAnswer) => [r.vmName, r.restartOrder, r.state]),
      [
        ['db', 1, 'running'],
        ['web', 1, 'running'],
        ['cache', 2, 'running'],
      ],
      'in start order: order group, then priority',
    );
    for (const restart of failover.restarts as ApiAnswer[])
      assert.ok(['ha-b', 'ha-c', 'ha-d'].includes(restart.toHostName), restart.toHostName);
    const [db, web, cache] = failover.restarts as ApiAnswer[];
    assert.ok(db!.startedAt <= web!.startedAt, 'db (highest) started before web (medium)');
    assert.ok(
      cache!.startedAt >= Math.max(db!.runningAt, web!.runningAt),
      'the second order group started once the first was running',
    );

    for (const [name, vmId] of Object.entries(vmIds)) {
      const vm = ok(await s.request('GET', `/vms/${vmId}`, { token: admin }));
      assert.equal(vm.id, vmId, `${name} keeps its id`);
      const to = (failover.restarts as ApiAnswer[]).find((r) => r.vmId === vmId)!.toHostName;
      assert.equal(vm.computed['location.hostName'], to);
      assert.equal(vm.facts['power.state'], 'running');
      const history = (await get(`/vms/${vmId}/location-history`)).items as ApiAnswer[];
      const [now, then] = history;
      assert.equal(now!.hostName, to);
      assert.equal(now!.reason, 'failover', JSON.stringify(history));
      assert.equal(then!.hostName, 'ha-a');
      assert.equal(then!.to, failover.failedAt, 'the interval on A ends when A failed');
    }
    const web2 = ok(await s.request('GET', `/vms/${vmIds.web}`, { token: admin }));
    assert.deepEqual(web2.facts['vm.uuid'], before.facts['vm.uuid']);
    assert.deepEqual(web2.facts['network.macs'], before.facts['network.macs']);
    assert.equal((await consoleTicks(s, admin, vmIds.web!, 2)).length, 2, 'it boots again');
    const listed = (await get('/vms?filter=name=web')).items as ApiAnswer[];
    assert.equal(listed.length, 1, 'one VM, not two');

    const events = (await get('/events?limit=500')).items as ApiAnswer[];
    const types = events.map((e) => e.type);
    assert.ok(types.includes('ha.hostFailed'), types.join(' '));
    assert.equal(types.filter((type) => type === 'ha.vmRestarted').length, 3);
    const audit = (await get('/audit?limit=500')).items as ApiAnswer[];
    const restarts = audit.filter((r) => r.action === 'ha.restart');
    assert.equal(restarts.length, 3);
    assert.ok(
      restarts.every((r) => r.actorName === 'zenith-ha' || r.actorId !== 'system'),
      JSON.stringify(restarts[0]),
    );
    t.diagnostic(
      `detection ${failover.detectedAt - crashedAt} ms after the crash; every VM running ${
        Math.max(...(failover.restarts as ApiAnswer[]).map((r) => r.runningAt)) - crashedAt
      } ms after (seen by the test at ${recoveredAt - crashedAt} ms)`,
    );
  });
  test('a host without a BMC crashes: its VMs restart only once its storage lease has been stale past the self-fencing deadline', async (t) => {
    const hostName = await whereIs(vmIds.db!);
    await until('its storage heartbeat read', async () => {
      const host = ((await get('/ha')).hosts as ApiAnswer[]).find((h) => h.name === hostName);
      return host?.fencing === 'self-fence' && host.storage ? host : undefined;
    });
    const crashedAt = Date.now();
    await machines[hostName]!.stop();
    const failover = await failoverOf(hostName);
    assert.equal(failover.fenceMethod, 'self-fence');
    assert.ok(
      failover.fencedAt - failover.failedAt >= 3000,
      `fenced ${failover.fencedAt - failover.failedAt} ms after the failure: the agent may still run them before 3 s`,
    );
    for (const restart of failover.restarts as ApiAnswer[]) {
      assert.equal(restart.state, 'running', JSON.stringify(restart));
      assert.ok(restart.startedAt >= failover.fencedAt, 'nothing restarts before the fence');
      assert.ok(![hostName, 'ha-a'].includes(restart.toHostName), restart.toHostName);
    }
    assert.ok((failover.restarts as ApiAnswer[]).some((r) => r.vmId === vmIds.db));
    t.diagnostic(
      `no BMC: detection ${failover.detectedAt - crashedAt} ms, fenced by lease ${failover.fencedAt - crashedAt} ms, every VM running ${
        Math.max(...(failover.restarts as ApiAnswer[]).map((r) => r.runningAt)) - crashedAt
      } ms after the crash`,
    );
  });

  test('a host cut off from the control network keeps its VMs until its agent powers them off (isolation response), and only then do they run elsewhere', async () => {
    const alive = ((await get('/ha')).hosts as ApiAnswer[])
      .filter((h) => h.state === 'healthy' && h.name.startsWith('ha-'))
      .map((h) => h.name as string);
    assert.ok(alive.length >= 2, alive.join(' '));
    const target = alive[0]!;
    const created = await s.waitForTask(
      admin,
      ok(
        await s.request('POST', '/vms', {
          token: admin,
          body: {
            name: 'app',
            hostId: target,
            cpus: 1,
            memoryBytes: 96 * 2 ** 20,
            diskBytes: 8 * 2 ** 20,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
          },
        }),
        202,
      ).id,
      60_000,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const appId = created.result.vmId as string;
    vmIds.app = appId;
    const started = await s.waitForTask(
      admin,
      ok(await s.request('POST', `/vms/${appId}/start`, { token: admin }), 202).id,
      60_000,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    await until('app protected', async () =>
      (await get(`/ha/vms/${appId}`)).state === 'protected' ? true : undefined,
    );
    const qemus = async () =>
      (await lab.processes(physical[target]!)).filter((p) => /qemu-system/.test(p.command));
    assert.ok((await qemus()).length >= 1, 'the guest runs on the host');

    await lab.cutNetwork(physical[target]!);
    const isolated = await until('the host seen isolated', async () => {
      const host = ((await get('/ha')).hosts as ApiAnswer[]).find((h) => h.name === target);
      return host?.state === 'isolated' ? host : undefined;
    });
    assert.ok(isolated.storage, 'its storage heartbeat goes on');
    const failover = await failoverOf(target);
    assert.equal(failover.fenceMethod, 'released', 'its agent powered them off itself');
    assert.deepEqual(await qemus(), [], 'no guest left running on the isolated host');
    const restart = (failover.restarts as ApiAnswer[]).find((r) => r.vmId === appId)!;
    assert.equal(restart.state, 'running');
    assert.notEqual(restart.toHostName, target);
    assert.equal(await whereIs(appId), restart.toHostName);
    const host = ((await get('/ha')).hosts as ApiAnswer[]).find((h) => h.name === target);
    assert.equal(host.state, 'isolated', 'cut off, never declared failed');
    const types = ((await get('/events?limit=1000')).items as ApiAnswer[])
      .filter((e) => e.objectId === isolated.hostId)
      .map((e) => e.type);
    assert.ok(types.includes('ha.hostIsolated'), types.join(' '));
    assert.ok(!types.includes('ha.hostFailed'), types.join(' '));
  });
  test('zenith ha shows the hosts as the detector sees them, the VMs protected, and each failover in order', async () => {
    const zenith = cliRunner(s.baseUrl);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
    const status = await zenith(['ha']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /ha-a[\s│]+failed[\s│].*bmc/);
    assert.match(status.stdout, /isolated/);
    assert.match(status.stdout, /VMs: \d+ protected/);
    const failovers = await zenith(['ha', 'failovers']);
    assert.match(failovers.stdout, /ha-a[\s│]+done[\s│].*bmc[\s│]+3\/3 running/);
    const id = /(failover_[0-9A-Z]+)[\s│]+ha-a/.exec(failovers.stdout)?.[1];
    assert.ok(id, failovers.stdout);
    const one = await zenith(['ha', 'failover', id]);
    assert.equal(one.code, 0, one.stderr);
    // The database first (highest priority), then the web server.
    assert.match(
      one.stdout,
      /db[\s│]+highest[\s│]+1[\s│]+running[\s\S]*web[\s│]+medium[\s│]+1[\s│]+running/,
    );
    const vms = await zenith(['--json', 'ha', 'vms']);
    const items = (JSON.parse(vms.stdout) as { items: ApiAnswer[] }).items;
    assert.ok(items.some((vm) => vm.name === 'db' && vm.priority === 'highest'));
  });
  test('the fenced host comes back: it runs none of the VMs that moved away, discards what is left of them (their disks stay), and they are not listed twice', async () => {
    // What ha-a still holds of the VMs while it is off: their definitions, in its state directory.
    const definitions = join(physical['ha-a']!.stateDir, 'qemu', 'vms');
    const staleDefinitions = () =>
      readdirSync(definitions).flatMap((id) => {
        const file = join(definitions, id, 'vm.json');
        if (!existsSync(file)) return [];
        const record = JSON.parse(readFileSync(file, 'utf8')) as {
          spec: { name: string; disks: Array<{ file: string }> };
        };
        return [{ name: record.spec.name, disks: record.spec.disks.map((d) => d.file) }];
      });
    const stale = staleDefinitions();
    assert.deepEqual(stale.map((d) => d.name).sort(), ['cache', 'db', 'web']);
    const power = ok(
      await s.request('POST', '/hosts/ha-a/power', { token: admin, body: { action: 'on' } }),
      202,
    );
    assert.equal((await s.waitForTask(admin, power.id, 60_000)).state, 'succeeded');
    await connected('ha-a');
    await until('ha-a healthy again', async () => {
      const host = ((await get('/ha')).hosts as ApiAnswer[]).find((h) => h.name === 'ha-a');
      return host?.state === 'healthy' ? host : undefined;
    });
    const qemus = (await lab.processes(physical['ha-a']!)).filter((p) =>
      /qemu-system/.test(p.command),
    );
    assert.deepEqual(qemus, [], 'nothing of what moved away runs on ha-a');
    for (const name of ['web', 'db', 'cache']) {
      const listed = (await get(`/vms?filter=name=${name}`)).items as ApiAnswer[];
      assert.equal(listed.length, 1, `${name} listed once`);
      assert.equal(listed[0].facts['vm.uuidConflict'], undefined, `${name} has no twin`);
      assert.notEqual(listed[0].computed['location.hostName'], 'ha-a');
    }
    const events = ((await get('/events?limit=1000')).items as ApiAnswer[]).map((e) => e.type);
    assert.ok(events.includes('ha.hostRecovered'), events.join(' '));
    // Told what moved away, its agent removes their definitions, never their disks.
    await until(
      "ha-a's stale definitions discarded",
      async () => (staleDefinitions().length === 0 ? true : undefined),
      30_000,
      250,
    );
    for (const file of stale.flatMap((d) => d.disks))
      assert.ok(existsSync(file), `${file} stays: the VM runs elsewhere on it`);
    for (const name of ['web', 'db', 'cache']) {
      const [vm] = (await get(`/vms?filter=name=${name}`)).items as ApiAnswer[];
      assert.equal(vm.facts['power.state'], 'running', `${name} runs on`);
      assert.notEqual(vm.computed['location.hostName'], 'ha-a');
    }
    assert.equal((await consoleTicks(s, admin, vmIds.web!, 2)).length, 2, 'web runs on');
  });
  test('a host whose BMC does not answer, cut off while its storage lease goes on, restarts nothing; once its lease has stopped past the self-fencing deadline, its VMs run elsewhere', async (t) => {
    const created = await s.waitForTask(
      admin,
      ok(
        await s.request('POST', '/vms', {
          token: admin,
          body: {
            name: 'queue',
            hostId: 'ha-a',
            cpus: 1,
            memoryBytes: 96 * 2 ** 20,
            diskBytes: 8 * 2 ** 20,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
          },
        }),
        202,
      ).id,
      60_000,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const queueId = created.result.vmId as string;
    // Left running when cut off: only fencing may end it.
    ok(
      await s.request('POST', '/policies', {
        token: admin,
        body: {
          name: 'queue-stays',
          scope: { kind: 'vm', id: queueId },
          settings: { ha: { isolationResponse: 'leave-running' } },
        },
      }),
      201,
    );
    const started = await s.waitForTask(
      admin,
      ok(await s.request('POST', `/vms/${queueId}/start`, { token: admin }), 202).id,
      60_000,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    await until('queue protected', async () =>
      (await get(`/ha/vms/${queueId}`)).state === 'protected' ? true : undefined,
    );
    const qemusOnA = async () =>
      (await lab.processes(physical['ha-a']!)).filter((p) => /qemu-system/.test(p.command));
    assert.equal((await qemusOnA()).length, 1);
    const failoversOfA = async () =>
      ((await get('/ha/failovers')).items as ApiAnswer[]).filter((f) => f.hostName === 'ha-a');
    const before = (await failoversOfA()).length;

    const requestsBefore = sim.requests.length;
    sim.fault({ kind: 'hang' });
    try {
      await lab.cutNetwork(physical['ha-a']!);
      let seen: unknown;
      const isolated = await until('ha-a seen isolated', async () => {
        const host = ((await get('/ha')).hosts as ApiAnswer[]).find((h) => h.name === 'ha-a');
        seen = host;
        return host?.state === 'isolated' ? host : undefined;
      }).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}: ${JSON.stringify(seen)}`);
      });
      assert.ok(isolated.storage, 'its storage heartbeat goes on');
      // Some seconds cut off, its lease held: nothing restarts, the guest still runs there.
      await new Promise((resolve) => setTimeout(resolve, 5000));
      assert.equal(
        (await failoversOfA()).length,
        before,
        'no failover of a host that may run them',
      );
      assert.equal((await qemusOnA()).length, 1, 'the guest still runs on ha-a');
      assert.equal(await whereIs(queueId), 'ha-a');
      const alarms = ((await get('/events?limit=1000')).items as ApiAnswer[]).filter(
        (e) => e.objectId === isolated.hostId && e.type === 'ha.hostIsolated',
      );
      assert.ok(alarms.length >= 1, 'cut off: said as an event');

      // Now it dies: the lease stops. The BMC still does not answer: the lease decides.
      const crashedAt = Date.now();
      await machines['ha-a']!.stop();
      const failover = await until(
        'a failover of ha-a fenced by its lease',
        async () => {
          // One read: with two, the first could still show an earlier failover (done, fenced by
          // its BMC) as the newest while the second already counted the new one.
          const failovers = await failoversOfA();
          const latest = failovers[0];
          return failovers.length > before && latest?.state === 'done' ? latest : undefined;
        },
        90_000,
        250,
      ).catch(async (error: unknown) => {
        const state = JSON.stringify({ failovers: await failoversOfA(), ha: await get('/ha') });
        throw new Error(`${(error as Error).message}: ${state}`);
      });
      // Should a BMC that hangs every request ever confirm a fence, the failure says what it saw.
      assert.equal(
        failover.fenceMethod,
        'self-fence',
        `its BMC never confirmed anything: ${JSON.stringify({
          failover,
          bmcRequestsSinceTheFault: sim.requests.slice(requestsBefore).slice(-40),
          machine: sim.machine('System1').power,
        })}`,
      );
      const restart = (failover.restarts as ApiAnswer[]).find((r) => r.vmId === queueId)!;
      assert.equal(restart.state, 'running', JSON.stringify(restart));
      assert.notEqual(restart.toHostName, 'ha-a');
      assert.ok(
        failover.fencedAt - failover.failedAt >= 3000,
        `fenced ${failover.fencedAt - failover.failedAt} ms after its lease stopped`,
      );
      assert.ok(restart.startedAt >= failover.fencedAt, 'nothing restarts before the fence');
      const events = ((await get('/events?limit=1000')).items as ApiAnswer[]).filter(
        (e) => e.type === 'ha.fenceFailed' && e.data.failoverId === failover.id,
      );
      assert.ok(events.length >= 1, 'the BMC that did not answer is an alarm');
      assert.match(events[0].data.reason, /BMC/);
      const listed = (await get('/vms?filter=name=queue')).items as ApiAnswer[];
      assert.equal(listed.length, 1, 'one VM, not two');
      assert.equal(listed[0].computed['location.hostName'], restart.toHostName);
      assert.equal((await consoleTicks(s, admin, queueId, 2)).length, 2, 'it boots again');
      t.diagnostic(
        `BMC silent: fenced by lease ${failover.fencedAt - crashedAt} ms after the crash, running ${restart.runningAt - crashedAt} ms after`,
      );
    } finally {
      sim.fault(undefined);
      await lab.restoreNetwork(physical['ha-a']!);
    }
  });
});
