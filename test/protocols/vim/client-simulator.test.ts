import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  containerViewSpec,
  objectsSpec,
  PropertyCollector,
} from '../../../src/protocols/vim/property-collector.js';
import { asTask, waitForTask } from '../../../src/protocols/vim/tasks.js';
import { VimClient, vimCallChannel } from '../../../src/protocols/vim/vim-client.js';
import { moRef, MoRef } from '../../../src/protocols/vim/vim-values.js';
import {
  startVsphereSimulator,
  type VsphereSimulator,
} from '../../../src/testing/vsphere-simulator.js';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { ManualClock } from '../../../src/core/clock.js';
import { until } from '../../../src/testing/wait.js';

describe('the VIM client against the vSphere simulator', () => {
  let sim: VsphereSimulator;
  const clients: VimClient[] = [];
  const open = async (extra: Partial<Parameters<typeof VimClient.connect>[0]> = {}) => {
    const client = await VimClient.connect({
      url: sim.url,
      username: sim.username,
      password: sim.password,
      tls: { thumbprint: sim.thumbprint },
      ...extra,
    });
    clients.push(client);
    return client;
  };
  before(async () => {
    sim = await startVsphereSimulator({
      clustersPerDatacenter: 1,
      hostsPerCluster: 2,
      vmsPerPool: 2,
    });
  });
  after(async () => {
    for (const client of clients) await client.close();
    await sim.stop();
  });

  test('logs in with a pinned thumbprint, reads the service content and keeps the session cookie', async () => {
    const client = await open();
    assert.equal(client.content.about.apiType, 'VirtualCenter');
    assert.match(client.content.about.fullName, /vCenter Server/);
    assert.match(client.sessionCookie ?? '', /^vmware_soap_session=/);
    const now = await client.invoke('CurrentTime', client.serviceInstance);
    assert.ok(typeof now === 'string' && !Number.isNaN(Date.parse(now)));
  });

  test('an unknown certificate is refused before anything is sent, and the error shows its thumbprint', async () => {
    await assert.rejects(
      VimClient.connect({ url: sim.url, username: 'a', password: 'b' }),
      (error: any) => {
        assert.equal(error.code, 'VIM_CERTIFICATE_REJECTED');
        assert.equal(error.details.thumbprint, sim.thumbprint);
        return true;
      },
    );
    await assert.rejects(
      VimClient.connect({
        url: sim.url,
        username: 'a',
        password: 'b',
        tls: { thumbprint: 'AB'.repeat(32) },
      }),
      { code: 'VIM_CERTIFICATE_REJECTED' },
    );
  });

  test('the certificate is trusted through a CA file, a SHA-1 pin or a pin without colons', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zenith-ca-'));
    try {
      writeFileSync(join(dir, 'ca.pem'), sim.certificatePem);
      await open({ tls: { ca: sim.certificatePem } });
      await open({ tls: { thumbprint: sim.thumbprint.replaceAll(':', '').toLowerCase() } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a refused password is VIM_INVALID_LOGIN; a closed port is VIM_CONNECT_FAILED', async () => {
    await assert.rejects(open({ password: '' }), { code: 'VIM_INVALID_LOGIN' });
    await assert.rejects(
      VimClient.connect({ url: 'https://127.0.0.1:1/sdk', username: 'a', password: 'b' }),
      { code: 'VIM_CONNECT_FAILED' },
    );
  });

  test('a session terminated by another user is logged in again transparently', async () => {
    const client = await open();
    const admin = await open();
    const key = client.sessionCookie!.split('=')[1]!;
    await admin.invoke('TerminateSession', admin.content.sessionManager, { sessionId: [key] });
    const calls: string[] = [];
    const onCall = (message: any) => calls.push(message.method);
    subscribe(vimCallChannel.name, onCall);
    try {
      await client.invoke('CurrentTime', client.serviceInstance);
    } finally {
      unsubscribe(vimCallChannel.name, onCall);
    }
    assert.deepEqual(calls, ['CurrentTime', 'Login', 'CurrentTime']);
    assert.equal(client.stats.logins, 2);
    assert.notEqual(client.sessionCookie!.split('=')[1], key);
  });

  test('an idle session is kept alive with CurrentTime on the injected clock; a busy one is left alone', async () => {
    const clock = new ManualClock();
    const client = await open({ clock, keepAliveMs: 60_000 });
    const calls: string[] = [];
    const onCall = (message: any) => calls.push(message.method);
    subscribe(vimCallChannel.name, onCall);
    try {
      await clock.advance(30_000);
      await client.invoke('CurrentTime', client.serviceInstance);
      calls.length = 0;
      await clock.advance(30_000);
      // The last call was 30 s ago: not idle yet.
      assert.equal(calls.length, 0, calls.join());
      await clock.advance(60_000);
      await until('a keep-alive call', async () =>
        calls.includes('CurrentTime') ? true : undefined,
      );
      assert.equal(client.stats.logins, 1, 'the session stayed the same');
    } finally {
      unsubscribe(vimCallChannel.name, onCall);
    }
  });

  test('reads the whole inventory through a container view', async () => {
    const client = await open();
    const view = (await client.invoke('CreateContainerView', client.content.viewManager, {
      container: client.content.rootFolder,
      type: ['VirtualMachine', 'HostSystem'],
      recursive: true,
    })) as MoRef;
    const all = await new PropertyCollector(client).retrieveAll([
      containerViewSpec(view, [
        { type: 'VirtualMachine', pathSet: ['name', 'runtime.host', 'runtime.powerState'] },
        { type: 'HostSystem', pathSet: ['name'] },
      ]),
    ]);
    const vms = all.filter((o) => o.obj.type === 'VirtualMachine');
    const hosts = all.filter((o) => o.obj.type === 'HostSystem');
    // 2 VMs in the cluster's pool and 2 on the standalone host; 2 cluster hosts and the standalone one.
    assert.equal(vms.length, 4);
    assert.equal(hosts.length, 3);
    for (const vm of vms) {
      assert.ok(hosts.some((h) => h.obj.equals(vm.props.get('runtime.host') as MoRef)));
      assert.equal(vm.props.get('runtime.powerState'), 'poweredOn');
    }
  });

  test('tasks are awaited with progress; a failed task is the coded error of its fault', async () => {
    const client = await open();
    const view = (await client.invoke('CreateContainerView', client.content.viewManager, {
      container: client.content.rootFolder,
      type: ['VirtualMachine'],
      recursive: true,
    })) as MoRef;
    const [vm] = await new PropertyCollector(client).retrieveAll([
      containerViewSpec(view, [{ type: 'VirtualMachine', pathSet: ['name'] }]),
    ]);
    const progress: number[] = [];
    await waitForTask(
      client,
      asTask(await client.invoke('PowerOffVM_Task', vm!.obj), 'PowerOffVM_Task'),
      {
        onProgress: (p) => progress.push(p),
      },
    );
    assert.equal(progress.at(-1), 100);
    await assert.rejects(
      waitForTask(
        client,
        asTask(await client.invoke('PowerOffVM_Task', vm!.obj), 'PowerOffVM_Task'),
      ),
      (error: any) =>
        error.code === 'VIM_INVALID_STATE' && error.details.faultType === 'InvalidPowerState',
    );
    await waitForTask(
      client,
      asTask(await client.invoke('PowerOnVM_Task', vm!.obj), 'PowerOnVM_Task'),
    );
  });

  test('faults of calls: a missing object, a method the server lacks', async () => {
    const client = await open();
    await assert.rejects(client.invoke('PowerOnVM_Task', moRef('VirtualMachine', 'vm-404')), {
      code: 'VIM_NOT_FOUND',
    });
    await assert.rejects(
      client.invoke('RebootGuest', moRef('VirtualMachine', 'vm-404')),
      (error: any) => ['VIM_NOT_SUPPORTED', 'VIM_NOT_FOUND'].includes(error.code),
    );
  });

  test("WaitForUpdatesEx reports another session's change as one modify after the version token", async () => {
    const watcher = await open();
    const other = await open();
    const view = (await watcher.invoke('CreateContainerView', watcher.content.viewManager, {
      container: watcher.content.rootFolder,
      type: ['VirtualMachine'],
      recursive: true,
    })) as MoRef;
    const collector = await new PropertyCollector(watcher).createCollector();
    await collector.createFilter(
      containerViewSpec(view, [
        { type: 'VirtualMachine', pathSet: ['name', 'runtime.powerState'] },
      ]),
    );
    const initial = await collector.waitForUpdates('', { maxWaitSeconds: 0 });
    assert.ok(initial && initial.objectUpdates.every((u) => u.kind === 'enter'));
    assert.equal(initial.objectUpdates.length, 4);
    const target = initial.objectUpdates.find((u) =>
      u.changes.some((c) => c.val === 'poweredOn'),
    )!.obj;
    const waiting = collector.waitForUpdates(initial.version, { maxWaitSeconds: 30 });
    await waitForTask(
      other,
      asTask(await other.invoke('PowerOffVM_Task', target), 'PowerOffVM_Task'),
    );
    const next = await waiting;
    assert.ok(next);
    const change = next.objectUpdates.find((u) => u.obj.equals(target));
    assert.equal(change?.kind, 'modify');
    assert.deepEqual(
      change?.changes.map((c) => [c.name, c.val]),
      [['runtime.powerState', 'poweredOff']],
    );
    // (The simulator hands out one version token, '-', for ever; vCenter's advance. Either way the client passes it on.)
    assert.equal(typeof next.version, 'string');
    const quiet = await collector.waitForUpdates(next.version, { maxWaitSeconds: 0 });
    assert.equal(quiet, null, 'nothing else changed');
    const props = await new PropertyCollector(other).retrieveAll([
      objectsSpec([target], [{ type: 'VirtualMachine', pathSet: ['runtime.powerState'] }]),
    ]);
    assert.equal(props[0]!.props.get('runtime.powerState'), 'poweredOff');
    await collector.destroy();
  });
});
