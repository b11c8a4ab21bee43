/**
 * One libvirt daemon, one connection: adding the same daemon again — by the same URI, by a
 * differently spelled one, or by two adds at once — is a 409 ZEN_CONFLICT naming the connection that
 * has it, and leaves nothing behind (no connection, no service identity, no second copy of its VMs).
 * Against a real libvirtd (its own mount namespace) serving libvirt's test hypervisor.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import {
  assertOneOfTwoAddsWins,
  assertRefusedAsDuplicate,
  savedConnectionsAndIdentities,
} from '../../src/testing/connection-conflicts.js';
import { startLibvirtd, type LibvirtdDaemon } from '../../src/testing/libvirtd.js';
import { until } from '../../src/testing/wait.js';

describe('the same libvirt daemon added twice', () => {
  let daemon: LibvirtdDaemon;
  let s: TestServer;
  let token: string;
  let uri: string;
  let first: { id: string; name: string };

  before(async () => {
    daemon = await startLibvirtd({ virtlogd: false });
    s = await startTestServer();
    token = await s.login();
    uri = `test+unix:///default?socket=${daemon.socketPath}`;
  });
  after(async () => {
    await s?.close();
    await daemon?.stop();
  });

  const add = (name: string, settingsUri: string) =>
    s.request('POST', '/connections', {
      token,
      body: { name, type: 'libvirt', settings: { uri: settingsUri } },
    });
  const saved = () => savedConnectionsAndIdentities(s, token);
  /** The daemon's domains as the inventory shows them (present ones): each UUID once. */
  const presentVms = async (): Promise<string[]> =>
    (await s.request('GET', '/vms?limit=1000', { token })).body.items
      .filter((vm: ApiAnswer) => vm.status !== 'missing')
      .map((vm: ApiAnswer) => vm.externalId)
      .sort();
  const assertRefused = assertRefusedAsDuplicate;

  const tryIt = (settingsUri: string) =>
    s.request('POST', '/connections/test', {
      token,
      body: { type: 'libvirt', settings: { uri: settingsUri } },
    });

  test('the first connection is added and discovers the daemon', async () => {
    const tried = await tryIt(uri);
    assert.equal(tried.status, 200, JSON.stringify(tried.body));
    assert.equal(tried.body.connectedAs, null, 'nobody has this daemon yet');
    const added = await add('lv-a', uri);
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal(added.body.state, 'connected', added.body.lastError);
    first = { id: added.body.id, name: added.body.name };
    assert.ok((await presentVms()).length >= 1, 'the test driver has a domain');
  });

  test('the same URI again is refused with 409 naming the first, and nothing is saved', async (t) => {
    const before = await saved();
    const vms = await presentVms();
    const started = performance.now();
    assertRefused(await add('lv-b', uri), first);
    t.diagnostic(
      `refused after ${Math.round(performance.now() - started)} ms (one probe connection)`,
    );
    assert.deepEqual(await saved(), before);
    assert.deepEqual(await presentVms(), vms);
    assert.equal(new Set(vms).size, vms.length, 'each VM once');
    // Trying the settings first says so too, without refusing: the daemon answers, it is just taken.
    const tried = await tryIt(uri);
    assert.equal(tried.status, 200, JSON.stringify(tried.body));
    assert.deepEqual(tried.body.connectedAs, first);
  });

  test('a differently spelled URI for the same daemon (no transport, another socket path form) is refused too', async () => {
    const before = await saved();
    const respelled = `test:///default?socket=${dirname(daemon.socketPath)}/.//${basename(daemon.socketPath)}`;
    assert.notEqual(respelled, uri);
    assertRefused(await add('lv-c', respelled), first);
    assert.deepEqual(await saved(), before);
  });

  test('a connection whose daemon was unreachable when added, and turns out to be one connected already, stays disconnected and discovers nothing', async () => {
    // A socket path that does not exist yet: the add cannot reach the daemon, so it is saved as before.
    const links = mkdtempSync(join(tmpdir(), 'zenith-dup-'));
    try {
      const link = join(links, 'libvirt-sock');
      const vms = await presentVms();
      const added = await add('lv-later', `test+unix:///default?socket=${link}`);
      assert.equal(added.status, 201, JSON.stringify(added.body));
      assert.equal(added.body.state, 'disconnected');
      // Now the path leads to the daemon lv-a has: the retry reaches it and finds it taken.
      symlinkSync(daemon.socketPath, link);
      const refused = await until(
        'the retry to find the daemon taken',
        async () => {
          const now = (await s.request('GET', `/connections/${added.body.id}`, { token })).body;
          return /connected already, as connection 'lv-a'/.test(now.lastError ?? '')
            ? now
            : undefined;
        },
        30_000,
      );
      assert.equal(refused.state, 'disconnected');
      assert.deepEqual(await presentVms(), vms, 'its VMs were not discovered a second time');
      const removed = await s.request('DELETE', `/connections/${added.body.id}`, { token });
      assert.equal(removed.status, 200);
    } finally {
      rmSync(links, { recursive: true, force: true });
    }
  });

  test('once the first is removed the daemon can be added again; of two adds at once exactly one wins', async () => {
    const removed = await s.request('DELETE', `/connections/${first.id}`, { token });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    await assertOneOfTwoAddsWins(s, token, () => Promise.all([add('lv-d', uri), add('lv-e', uri)]));
    const vms = await presentVms();
    assert.ok(vms.length >= 1);
    assert.equal(new Set(vms).size, vms.length, 'each VM once');
  });
});
