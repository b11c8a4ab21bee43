/**
 * VM monitoring on the local QEMU host with real TCG guests: a protected VM whose QEMU is killed
 * runs again on its host, a guest that panics (pvpanic) is restarted until the limit, a guest that
 * powers itself off and a VM with monitoring off stay off, and past the limit a VM stays off and
 * says why (GET /ha/vms, `zenith ha vms`, an event).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  adminPassword,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { consoleTicks } from '../../src/testing/guest-console.js';
import { ensureGuestImage, guestAppend } from '../../src/testing/guest-image.js';
import {
  cliRunner,
  startServerProcess,
  type ServerProcess,
} from '../../src/testing/server-process.js';
import { until } from '../../src/testing/wait.js';

describe('VM monitoring: a VM whose QEMU died or whose guest panicked runs again on its host', () => {
  let s: TestServer;
  let admin: string;
  let hostId: string;
  const images = mkdtempSync(join(tmpdir(), 'zenith-vmmon-'));
  let image: { kernel: string; initrd: string };

  const ok = (answer: { status: number; body: ApiAnswer }, status = 200) => {
    assert.equal(answer.status, status, JSON.stringify(answer.body));
    return answer.body;
  };
  const get = async (path: string) => ok(await s.request('GET', path, { token: admin }));
  const vmOf = (id: string) => get(`/vms/${id}`);
  const events = async (type: string, vmId: string) =>
    ((await get(`/events?type=${type}&objectId=${vmId}&limit=100`)).items as ApiAnswer[]).filter(
      (e) => e.type === type,
    );

  /** Creates and starts a 128 MiB guest with this kernel command line; answers its id and pid. */
  const runGuest = async (name: string, cmdline: string) => {
    const created = await s.waitForTask(
      admin,
      ok(
        await s.request('POST', '/vms', {
          token: admin,
          body: {
            name,
            hostId,
            cpus: 1,
            memoryBytes: 128 * 1048576,
            diskBytes: 0,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline },
          },
        }),
        202,
      ).id,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const vmId = created.result.vmId as string;
    const started = await s.waitForTask(
      admin,
      ok(await s.request('POST', `/vms/${vmId}/start`, { token: admin }), 202).id,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    return vmId;
  };
  const stoppedWith = (vmId: string, cause: string) =>
    until(`${vmId} stopped (${cause})`, async () => {
      const vm = await vmOf(vmId);
      return vm.facts['power.state'] === 'stopped' && vm.facts['power.stopCause'] === cause
        ? vm
        : undefined;
    });
  /** Waits for VM monitoring's restart number `count` of the VM; answers the VM running again. */
  const restarted = async (vmId: string, count: number) => {
    const [event] = await until<ApiAnswer[]>(
      `restart ${count} of ${vmId}`,
      async () => {
        const found = await events('ha.vmMonitorRestarted', vmId);
        return found.length >= count ? found.slice(count - 1) : undefined;
      },
      90_000,
      200,
    );
    const task = await get(`/tasks/${event.data.taskId}`);
    assert.equal(task.kind, 'vm.start');
    assert.equal(task.state, 'succeeded');
    return { event, vm: await vmOf(vmId), task };
  };

  before(async () => {
    image = await ensureGuestImage();
    // It looks at the stopped VMs every 250 ms, not every second: each restart below starts sooner.
    s = await startTestServer({ vmMonitoring: { tickMs: 250 } });
    admin = await s.login();
    ok(
      await s.request('POST', '/connections', {
        token: admin,
        body: {
          name: 'local',
          type: 'qemu',
          settings: { storageRoots: [images, dirname(image.kernel)], accelerator: 'tcg' },
        },
      }),
      201,
    );
    hostId = ((await get('/hosts')).items as ApiAnswer[])[0].id;
    ok(
      await s.request('POST', '/policies', {
        token: admin,
        body: {
          name: 'ha-monitor',
          scope: { kind: 'global' },
          settings: { ha: { enabled: true, vmMonitoring: { enabled: true, maxRestarts: 2 } } },
        },
      }),
      201,
    );
  });
  after(async () => {
    for (const vm of (await get('/vms?limit=100')).items as ApiAnswer[])
      if (vm.facts['power.state'] !== 'stopped')
        await s
          .waitForTask(
            admin,
            (await s.request('POST', `/vms/${vm.id}/stop`, { token: admin })).body.id,
          )
          .catch(() => undefined);
    await s.close();
    rmSync(images, { recursive: true, force: true });
  });

  test('a guest that powers itself off and a killed VM with monitoring off stay off; a killed protected VM runs again on its host, then past its limit stays off and says why', async () => {
    const quitter = await runGuest('quitter', guestAppend({ poweroffAfterTicks: 5 }));
    const unmonitored = await runGuest('unmonitored', guestAppend());
    const crashy = await runGuest('crashy', guestAppend());
    // Field by field: this VM turns monitoring off; that one keeps it with a limit of 1.
    for (const [vmId, vmMonitoring] of [
      [unmonitored, { enabled: false }],
      [crashy, { enabled: true, maxRestarts: 1 }],
    ] as const)
      ok(
        await s.request('POST', '/policies', {
          token: admin,
          body: {
            name: `monitor-${vmId}`,
            scope: { kind: 'vm', id: vmId },
            settings: { ha: { vmMonitoring } },
          },
        }),
        201,
      );

    const quit = await stoppedWith(quitter, 'guest-shutdown');
    assert.match(quit.facts['power.reason'], /powered itself off/);
    assert.match(quit.facts['power.stoppedAt'], /^\d{4}-\d\d-\d\dT/);
    const unmonitoredVm = await vmOf(unmonitored);
    process.kill(unmonitoredVm.facts['qemu.pid'], 'SIGKILL');
    await stoppedWith(unmonitored, 'crashed');

    // Killed after the two others were seen stopped: when it runs again, VM monitoring has looked
    // at them too, and left them off.
    const before = await vmOf(crashy);
    assert.equal(before.facts['power.stopCause'], null, 'running: no stop cause');
    process.kill(before.facts['qemu.pid'], 'SIGKILL');
    const first = await restarted(crashy, 1);
    assert.equal(first.event.data.cause, 'crashed');
    assert.equal(first.event.data.hostId, hostId);
    assert.equal(first.vm.id, crashy);
    assert.equal(first.vm.computed['location.hostId'], hostId, 'on the same host');
    assert.equal(first.vm.facts['power.state'], 'running');
    assert.notEqual(first.vm.facts['qemu.pid'], before.facts['qemu.pid'], 'a new QEMU');
    // Its start is high availability's, audited under its name.
    assert.equal((await get(`/users/${first.task.ownerId}`)).name, 'zenith-ha');
    // The guest booted again: its console counts from the start.
    const ticks = await consoleTicks(s, admin, crashy, 3);
    assert.ok(ticks[0]! < 50, `a fresh boot: ${ticks.join(' ')}`);
    for (const [vmId, cause] of [
      [quitter, 'guest-shutdown'],
      [unmonitored, 'crashed'],
    ] as const) {
      const vm = await vmOf(vmId);
      assert.equal(vm.facts['power.state'], 'stopped', vm.name);
      assert.equal(vm.facts['power.stopCause'], cause, vm.name);
      assert.equal((await events('ha.vmMonitorRestarted', vmId)).length, 0, vm.name);
    }

    // Its second death within the window is past its limit (1): it stays off and says why.
    process.kill(first.vm.facts['qemu.pid'], 'SIGKILL');
    const [limit] = await until<ApiAnswer[]>('the limit event', async () => {
      const found = await events('ha.vmMonitoringLimit', crashy);
      return found.length > 0 ? found : undefined;
    });
    assert.equal(limit.data.restarts, 1);
    assert.equal(limit.data.maxRestarts, 1);
    assert.equal(limit.data.windowMinutes, 60);
    const status = await get(`/ha/vms/${crashy}`);
    assert.equal(status.state, 'monitoring-limit');
    assert.match(status.reason, /restarted 1 times in the last 60 min \(the limit is 1\)/);
    assert.equal((await vmOf(crashy)).facts['power.state'], 'stopped');
    assert.equal((await events('ha.vmMonitorRestarted', crashy)).length, 1);

    const zenith = cliRunner(s.baseUrl);
    assert.equal(
      (await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` })).code,
      0,
    );
    assert.equal((await get('/ha')).vms.monitoringLimit, 1, 'GET /ha counts it');
    const summary = await zenith(['ha']);
    assert.match(summary.stdout, /1 left stopped at VM monitoring's restart limit/);
    const listed = await zenith(['ha', 'vms', '--state', 'monitoring-limit']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /crashy[\s│]+monitoring-limit[\s\S]*the limit is 1/);
    assert.doesNotMatch(listed.stdout, /quitter|unmonitored/);

    // Started again by a user, it is monitored again (a new stop, a new count in the window).
    const started = await s.waitForTask(
      admin,
      ok(await s.request('POST', `/vms/${crashy}/start`, { token: admin }), 202).id,
    );
    assert.equal(started.state, 'succeeded');
    assert.notEqual((await get(`/ha/vms/${crashy}`)).state, 'monitoring-limit');
  });

  test('a guest that panics (pvpanic) is powered off by QEMU and restarted, until the limit leaves it off', async () => {
    const panicky = await runGuest('panicky', guestAppend({ pvpanic: true, panicAfterTicks: 5 }));
    const first = await restarted(panicky, 1);
    assert.equal(first.event.data.cause, 'guest-panic');
    assert.equal(first.vm.computed['location.hostId'], hostId);
    const second = await restarted(panicky, 2);
    assert.equal(second.event.data.cause, 'guest-panic');
    // The third panic within the window: two restarts are its limit.
    const [limit] = await until<ApiAnswer[]>(
      'the limit event',
      async () => {
        const found = await events('ha.vmMonitoringLimit', panicky);
        return found.length > 0 ? found : undefined;
      },
      90_000,
      200,
    );
    assert.equal(limit.data.cause, 'guest-panic');
    assert.equal(limit.data.restarts, 2);
    const vm = await vmOf(panicky);
    assert.equal(vm.facts['power.state'], 'stopped');
    assert.equal(vm.facts['power.stopCause'], 'guest-panic');
    assert.match(vm.facts['power.reason'], /panicked/);
    const status = await get(`/ha/vms/${panicky}`);
    assert.equal(status.state, 'monitoring-limit');
    assert.match(status.reason, /its guest panicked/);
    const history = ((await get(`/vms/${panicky}/location-history`)).items as ApiAnswer[]).map(
      (i) => i.powerState,
    );
    assert.deepEqual(history, [
      'stopped',
      'running',
      'stopped',
      'running',
      'stopped',
      'running',
      'stopped',
    ]);
  });
});

describe('VM monitoring across a restart of the control plane (zenith serve killed)', () => {
  const baseDir = mkdtempSync(join(tmpdir(), 'zenith-vmmon-kill-'));
  const dataDir = join(baseDir, 'data');
  const images = join(baseDir, 'images');
  let server: ServerProcess;
  let token = '';
  let image: { kernel: string; initrd: string };
  let vmId = '';

  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${server.url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    const answer = { status: response.status, body: text ? JSON.parse(text) : null };
    assert.ok(answer.status < 300, `${method} ${path}: ${answer.status} ${text}`);
    return answer.body;
  };
  const task = async (method: string, path: string, body?: unknown) => {
    const accepted = await api(method, path, body);
    const done = await until<ApiAnswer>(
      `task ${accepted.id}`,
      async () => {
        const now = await api('GET', `/tasks/${accepted.id}`);
        return ['succeeded', 'failed', 'cancelled'].includes(now.state) ? now : undefined;
      },
      90_000,
      200,
    );
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    return done;
  };
  const start = async () => {
    server = await startServerProcess({ dataDir });
    const response = await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: adminPassword }),
    });
    token = ((await response.json()) as { token: string }).token;
  };
  const events = async (type: string) =>
    (
      (await api('GET', `/events?type=${type}&objectId=${vmId}&limit=100`)).items as ApiAnswer[]
    ).filter((e) => e.type === type);
  const running = () =>
    until<ApiAnswer>(
      'the VM running',
      async () => {
        const vm = await api('GET', `/vms/${vmId}`);
        return vm.facts['power.state'] === 'running' ? vm : undefined;
      },
      90_000,
      200,
    );

  before(async () => {
    image = await ensureGuestImage();
    await start();
    await api('POST', '/connections', {
      name: 'local',
      type: 'qemu',
      settings: { storageRoots: [images, dirname(image.kernel)], accelerator: 'tcg' },
    });
    const host = ((await api('GET', '/hosts')).items as ApiAnswer[])[0];
    await api('POST', '/policies', {
      name: 'ha-monitor',
      scope: { kind: 'global' },
      settings: { ha: { enabled: true, vmMonitoring: { enabled: true, maxRestarts: 1 } } },
    });
    const created = await task('POST', '/vms', {
      name: 'durable',
      hostId: host.id,
      cpus: 1,
      memoryBytes: 128 * 1048576,
      diskBytes: 0,
      options: { kernel: image.kernel, initrd: image.initrd, cmdline: guestAppend() },
    });
    vmId = created.result.vmId;
    await task('POST', `/vms/${vmId}/start`);
  });
  after(async () => {
    try {
      const vm = await api('GET', `/vms/${vmId}`).catch(() => undefined);
      if (vm?.facts['power.state'] === 'running') await task('POST', `/vms/${vmId}/stop`);
    } finally {
      await server.kill('SIGKILL').catch(() => undefined);
      rmSync(baseDir, { recursive: true, force: true });
    }
  });

  test('a restart is not issued again after the control plane restarts, and the count it made still holds the VM to its limit', async () => {
    const before = await api('GET', `/vms/${vmId}`);
    process.kill(before.facts['qemu.pid'], 'SIGKILL');
    await until(
      'the restart',
      async () => ((await events('ha.vmMonitorRestarted')).length === 1 ? true : undefined),
      90_000,
      200,
    );
    const again = await running();
    // Killed and started again: the VM's QEMU outlived it; the same stop is not restarted twice.
    await server.kill('SIGKILL');
    await start();
    const after = await running();
    assert.equal(after.facts['qemu.pid'], again.facts['qemu.pid'], 'the same QEMU runs on');
    process.kill(after.facts['qemu.pid'], 'SIGKILL');
    const [limit] = await until<ApiAnswer[]>(
      'the limit event',
      async () => {
        const found = await events('ha.vmMonitoringLimit');
        return found.length > 0 ? found : undefined;
      },
      90_000,
      200,
    );
    assert.equal(limit.data.restarts, 1, 'the restart before the control plane restarted counts');
    assert.equal((await api('GET', `/ha/vms/${vmId}`)).state, 'monitoring-limit');
    const starts = (
      (await api('GET', `/tasks?targetId=${vmId}&limit=100`)).items as ApiAnswer[]
    ).filter((t) => t.kind === 'vm.start' && t.targetId === vmId);
    assert.equal(starts.length, 2, "a user's start and one restart");
    assert.equal((await events('ha.vmMonitorRestarted')).length, 1);
  });
});
