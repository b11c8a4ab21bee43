/**
 * Replication between families: a VM of a libvirt host (a real libvirtd, a real QEMU domain under
 * TCG) at site A, replicated to a QEMU host of the control plane's own machine at site B, and back.
 * Each cycle reads what changed through libvirt's pull-mode backup and its checkpoints; the
 * replica at B is a chain of qcow2 points, a consistent copy of one instant each (the guest writes
 * the numbered pattern, so any consistent copy holds exactly a prefix of it). A test failover
 * boots a copy at B; a planned migration moves the VM to B as itself; reprotect replicates it to
 * the libvirt host (whose storage pool keeps the replica chain), and a planned migration fails it
 * back there as a libvirt domain again, the same VM.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { ok, type ApiAnswer, type TestServer } from '../../src/testing/control-plane.js';
import { guestBytes, patternPrefix } from '../../src/testing/disk-image.js';
import { ensureGuestImage, GUEST_READY_LINE, guestAppend } from '../../src/testing/guest-image.js';
import { type LibvirtdDaemon } from '../../src/testing/libvirtd.js';
import { startLibvirtAndQemu } from '../../src/testing/libvirt-and-qemu.js';
import { until } from '../../src/testing/wait.js';

const MiB = 1024 * 1024;

describe('replication between families: a libvirt domain at site A, a QEMU host at site B', () => {
  let daemon: LibvirtdDaemon;
  let s: TestServer;
  let token: string;
  const base = mkdtempSync(join(tmpdir(), 'zenith-lv-replication-'));
  const poolDir = join(base, 'pool');
  const qemuRoot = join(base, 'qemu');
  let vmId = '';
  const virsh = (...args: string[]) =>
    execFileSync('virsh', ['-c', `qemu:///system?socket=${daemon.socketPath}`, ...args], {
      encoding: 'utf8',
    });
  const get = async (path: string) => ok(await s.request('GET', path, { token }));
  const send = async (method: string, path: string, body: unknown, status = 200) =>
    ok(await s.request(method, path, { token, body }), status);
  const task = async (method: string, path: string, body?: unknown, timeoutMs = 240_000) => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const done = await s.waitForTask(token, answer.body.id, timeoutMs);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    return done.result;
  };
  const replication = () => get(`/vms/${vmId}/replication`);
  const readyPoints = async () =>
    ((await replication()).points as ApiAnswer[]).filter((p) => p.state === 'ready');
  const cycles = async (count: number) => {
    const first = ((await readyPoints())[0]?.seq as number | undefined) ?? 0;
    await until(
      `${count} more replication cycles`,
      async () =>
        (((await readyPoints())[0]?.seq as number | undefined) ?? 0) >= first + count || undefined,
      180_000,
      500,
    );
  };
  /** The pattern blocks in the newest ready point's image of disk0 (read through its chain). */
  const newestPointBlocks = async () => {
    const r = await replication();
    // Newest first; the newest is never folded into an older image, so it has its own file.
    const [latest] = (r.points as ApiAnswer[]).filter((p) => p.state === 'ready');
    const seq = String(latest!.seq).padStart(6, '0');
    return patternPrefix(guestBytes(join(r.directory as string, `disk0-${seq}.qcow2`)));
  };
  const hostOf = async () => (await get(`/vms/${vmId}`)).computed['location.hostName'];

  before(async () => {
    let image: { kernel: string; initrd: string };
    ({ daemon, s, token, image } = await startLibvirtAndQemu(base));
    ok(
      await s.request('POST', '/sites', { token, body: { name: 'site-a', hosts: ['lv-a'] } }),
      201,
    );
    ok(
      await s.request('POST', '/sites', { token, body: { name: 'site-b', hosts: ['lq-b'] } }),
      201,
    );
    const created = await task('POST', '/vms', {
      name: 'lvr',
      hostId: (await get('/hosts/lv-a')).id,
      cpus: 1,
      memoryBytes: 128 * MiB,
      diskBytes: 16 * MiB,
      options: {
        kernel: image.kernel,
        initrd: image.initrd,
        cmdline: guestAppend({ pattern: true }),
      },
    });
    vmId = created.vmId as string;
    await task('POST', `/vms/${vmId}/start`);
  });
  after(async () => {
    try {
      for (const each of (await s?.request('GET', '/vms?limit=100', { token }))?.body.items ?? [])
        if (each.facts['power.state'] !== 'stopped')
          await s.request('POST', `/vms/${each.id}/stop`, { token }).catch(() => undefined);
      await s?.close();
    } finally {
      await daemon?.stop();
      rmSync(base, { recursive: true, force: true });
    }
  });

  test('each cycle reads what changed through libvirt and keeps a consistent point at the QEMU host', async () => {
    await send(
      'POST',
      `/vms/${vmId}/replication`,
      {
        targetHost: 'lq-b',
        rpoSeconds: 60,
        intervalSeconds: 5,
        keepPoints: 2,
      },
      201,
    );
    await cycles(3);
    const r = await replication();
    assert.equal(r.sourceSite.name, 'site-a');
    assert.equal(r.targetSite.name, 'site-b');
    assert.ok(r.currentRpoSeconds < 60, `RPO ${r.currentRpoSeconds} s`);
    const report = (await get(`/replications/report?vm=lvr`)).items as ApiAnswer[];
    const [first, ...later] = report;
    assert.ok(first!.readBytes <= 16 * MiB);
    // After the first, libvirt's checkpoints give what the guest wrote since, not the whole disk.
    for (const row of later)
      assert.ok(row.readBytes < 16 * MiB, `cycle ${row.seq} read ${row.readBytes} bytes`);
    assert.ok((await newestPointBlocks()) > 0, 'the point holds a prefix of the pattern');
    // Replica points live under the QEMU host's storage root; nothing half-written.
    const files = readdirSync(r.directory as string);
    assert.ok((r.directory as string).startsWith(qemuRoot), r.directory);
    assert.equal(files.filter((f) => f.endsWith('.zenith-partial')).length, 0, files.join(' '));
  });

  test('a test failover boots a copy at the QEMU host while the libvirt domain runs on; cleanup removes it', async () => {
    await send(
      'POST',
      '/recovery-plans',
      {
        name: 'rp-lvr',
        sourceSite: 'site-a',
        targetSite: 'site-b',
        groups: [{ vms: ['lvr'], marker: GUEST_READY_LINE, timeoutSeconds: 120 }],
        shutdownTimeoutSeconds: 2,
      },
      201,
    );
    const run = await task('POST', '/recovery-plans/rp-lvr/runs', { operation: 'test' });
    const [step] = run.vms as ApiAnswer[];
    assert.equal(step!.state, 'up', JSON.stringify(step));
    const copy = await get(`/vms/${step!.runVmId as string}`);
    assert.notEqual(copy.id, vmId);
    assert.equal(copy.computed['location.hostName'], 'lq-b');
    assert.equal(await hostOf(), 'lv-a');
    assert.match(virsh('domstate', 'lvr'), /running/);
    await task('POST', `/recovery-plans/rp-lvr/runs/${run.id as string}/cleanup`);
    const gone = await s.request('GET', `/vms/${copy.id as string}`, { token });
    assert.ok(gone.status === 404 || gone.body.status !== 'present', 'the copy is gone');
  });

  test('a planned migration moves the libvirt domain to the QEMU host as the same VM, nothing lost', async () => {
    await task('POST', '/recovery-plans/rp-lvr/runs', { operation: 'planned' });
    assert.equal(await hostOf(), 'lq-b');
    const moved = await get(`/vms/${vmId}`);
    assert.equal(moved.facts['power.state'], 'running');
    assert.match(virsh('domstate', 'lvr'), /shut off/, 'stopped at A, defined there still');
    // Every block written at A is in what it runs from at B.
    const written = patternPrefix(guestBytes(join(poolDir, 'lvr-disk0.qcow2')));
    assert.ok((await newestPointBlocks()) >= written, `all ${written} blocks are at B`);
    const history = (await get(`/vms/${vmId}/location-history`)).items as ApiAnswer[];
    assert.equal(history[0]!.hostName, 'lq-b');
    assert.ok(history.some((h) => h.hostName === 'lv-a'));
    const left = ((await replication()).leftovers as ApiAnswer[]).map((l) => [
      l.host.name,
      l.reason,
      l.definition,
    ]);
    assert.deepEqual(left, [['lv-a', 'planned', true]]);
  });

  test('reprotect replicates it to the libvirt host, whose pool keeps the chain; it fails back there as a libvirt domain, the same VM; what it left at A goes', async () => {
    const diskAtA = join(poolDir, 'lvr-disk0.qcow2');
    const turned = await send('POST', '/recovery-plans/rp-lvr/reprotect', undefined);
    assert.deepEqual([turned.sourceSite.name, turned.targetSite.name], ['site-b', 'site-a']);
    const back = await replication();
    assert.equal(back.targetHost.name, 'lv-a');
    // The chain is kept below the libvirt host's pool directory, in a directory of its own.
    assert.ok((back.directory as string).startsWith(`${poolDir}/`), back.directory);
    // What it left at B when it turned: the chain it runs from there, until A holds a new one.
    assert.deepEqual(
      ((await replication()).leftovers as ApiAnswer[])
        .filter((l) => l.host.name === 'lq-b')
        .map((l) => l.reason),
      ['reprotect'],
    );
    await cycles(1);
    const firstAtA = (await readyPoints())[0]!.seq as number;
    await cycles(2);
    assert.ok((await newestPointBlocks()) > 0, 'a point at A holds a prefix of the pattern');
    // Beyond two points the oldest are folded into the base, in the pool's directory (qemu-img).
    await until('the older points at A folded into the base: two kept', async () => {
      const ready = await readyPoints();
      return (ready.length === 2 && ready.every((p) => (p.seq as number) > firstAtA)) || undefined;
    });
    // A holds a ready copy again: the stopped definition and the disk the VM left there go.
    await until(
      'what the VM left at A reclaimed',
      async () =>
        (!existsSync(diskAtA) &&
          !((await replication()).leftovers as ApiAnswer[]).some((l) => l.host.name === 'lv-a')) ||
        undefined,
    );
    assert.doesNotMatch(virsh('list', '--all', '--name'), /^lvr$/m, 'its stale definition is gone');

    await task('POST', '/recovery-plans/rp-lvr/runs', { operation: 'planned' });
    assert.equal(await hostOf(), 'lv-a');
    const home = await get(`/vms/${vmId}`);
    assert.equal(home.facts['power.state'], 'running');
    assert.match(virsh('domstate', 'lvr'), /running/, 'a libvirt domain again');
    // It runs on an overlay of the last point, in the replica's directory below the pool.
    const [source] = virsh('domblklist', 'lvr', '--details')
      .split('\n')
      .filter((line) => /\bdisk\b/.test(line))
      .map((line) => line.trim().split(/\s+/).at(-1)!);
    assert.ok(source!.startsWith(`${back.directory as string}/`), source);
    const history = (await get(`/vms/${vmId}/location-history`)).items as ApiAnswer[];
    assert.deepEqual(
      history
        .slice(0, 3)
        .map((h) => h.hostName)
        .filter((name, i, all) => all.indexOf(name) === i),
      ['lv-a', 'lq-b'],
    );
  });

  test('a policy replicates the VMs it selects as they come; one it cannot replicate is said once; saving one needs replication.manage everywhere', async () => {
    // One who may manage policies but not replication cannot replicate through a policy.
    ok(
      await s.request('POST', '/roles', {
        token,
        body: {
          name: 'policy-author',
          permissions: ['inventory.read', 'policy.read', 'policy.manage'],
        },
      }),
      201,
    );
    await s.plane.identities.createUser({ name: 'pat', role: 'none', password: 'pat-password-12' });
    ok(
      await s.request('POST', '/role-bindings', {
        token,
        body: { subject: 'pat', role: 'policy-author' },
      }),
      201,
    );
    const pat = await s.login('pat', 'pat-password-12');
    const policy = {
      name: 'dr-gold',
      scope: { kind: 'global' },
      when: "'dr:gold' in vm.tags",
      settings: {
        replication: { enabled: true, targetSite: 'site-b', rpoSeconds: 300, keepPoints: 2 },
      },
    };
    const refused = await s.request('POST', '/policies', { token: pat, body: policy });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'ZEN_FORBIDDEN');
    const bad = await s.request('POST', '/policies', {
      token,
      body: { ...policy, settings: { replication: { enabled: true, targetSite: 'site-b' } } },
    });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.error.details.field, 'settings.replication');
    await send('POST', '/policies', policy, 201);
    // Nor can they take a replicating policy's settings away by replacing it.
    const replaced = await s.request('PUT', '/policies/dr-gold', {
      token: pat,
      body: { ...policy, settings: {} },
    });
    assert.equal(replaced.status, 403, JSON.stringify(replaced.body));
    assert.equal((await get('/policies/dr-gold')).settings.replication.targetSite, 'site-b');

    const image = await ensureGuestImage();
    const make = async (name: string, host: string) =>
      (
        await task('POST', '/vms', {
          name,
          hostId: (await get(`/hosts/${host}`)).id,
          cpus: 1,
          memoryBytes: 64 * MiB,
          diskBytes: 4 * MiB,
          options: { kernel: image.kernel, initrd: image.initrd },
        })
      ).vmId as string;
    const [gold, plain, atB] = [
      await make('lvp', 'lv-a'),
      await make('lvq', 'lv-a'),
      await make('lqp', 'lq-b'),
    ];
    for (const vm of [gold, atB])
      ok(await s.request('PATCH', `/objects/${vm}`, { token, body: { addTags: ['dr:gold'] } }));
    const protectedNow = await until(
      'lvp replicated by the policy',
      async () => {
        const answer = await s.request('GET', `/vms/${gold}/replication`, { token });
        return answer.status === 200 ? answer.body : undefined;
      },
      30_000,
      250,
    );
    assert.equal(protectedNow.targetHost.name, 'lq-b');
    assert.equal(protectedNow.rpoSeconds, 300);
    assert.equal(protectedNow.keepPoints, 2);
    assert.equal(protectedNow.createdBy, 'policy:dr-gold');
    await until(
      'a first point of lvp',
      async () =>
        ((await get(`/vms/${gold}/replication`)).points as ApiAnswer[]).some(
          (p) => p.state === 'ready',
        ) || undefined,
      60_000,
      500,
    );
    const said = async (type: string) =>
      ((await get(`/events?type=${type}&limit=100`)).items as ApiAnswer[]).filter((e) =>
        [gold, atB, plain].includes(e.objectId as string),
      );
    const byPolicy = await said('replication.protectedByPolicy');
    assert.deepEqual(
      byPolicy.map((e) => [e.data.name, e.data.policy, e.data.targetHost]),
      [['lvp', 'dr-gold', 'lq-b']],
    );
    // lqp is at site B itself: refused, and said once, however many rounds pass.
    const refusals = await until('lqp refused', async () => {
      const found = await said('replication.policyRefused');
      return found.length > 0 ? found : undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, 6000));
    assert.deepEqual(
      (await said('replication.policyRefused')).map((e) => [e.data.name, e.data.code]),
      [['lqp', 'ZEN_INVALID_STATE']],
    );
    assert.match(refusals[0]!.data.message as string, /site-b/);
    // A VM the policy does not select is left alone.
    assert.equal((await s.request('GET', `/vms/${plain}/replication`, { token })).status, 404);
    // The policy removed: nothing it protected is unprotected.
    ok(await s.request('DELETE', '/policies/dr-gold', { token }));
    assert.equal((await s.request('GET', `/vms/${gold}/replication`, { token })).status, 200);
    // A replicated VM is not deleted from under its replica: replication is stopped first.
    const kept = await s.request('DELETE', `/vms/${gold}`, { token });
    assert.equal(kept.status, 409, JSON.stringify(kept.body));
    assert.equal(kept.body.error.code, 'ZEN_CONFLICT');
    assert.match(kept.body.error.message, /lvp is replicated: stop replicating it first/);
    assert.equal((await get(`/vms/${gold}`)).status, 'present');
    const replicaDirectory = protectedNow.directory as string;
    assert.equal((await s.request('DELETE', `/vms/${gold}/replication`, { token })).status, 204);
    assert.ok(!existsSync(replicaDirectory), 'its replica at B is removed');
    await task('DELETE', `/vms/${gold}`);
  });
});
