/**
 * A replication's `sync` mode against real peers: two "sites", each a `zenith agent` host in its
 * own PID and network namespace with storage of its own, one `zenith serve` process, a tiny TCG
 * guest writing the numbered pattern to its disk (a block at a time, each durable, saying how many
 * it wrote every 16 blocks on its console). The VM's writes are mirrored into a replica daemon at
 * site B (write-blocking: the guest's write completes once B has it); points are taken inside the
 * replica and the oldest folded inside it. The link to B is cut (its veth down: silence, no reset)
 * and the mirror must be given up without holding the guest; interval cycles then keep the
 * replica, and the mirror comes back. Site A is then lost, and the failover starts the VM at B from
 * a last point of the replica's live overlay: every block the guest said it wrote is there.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ApiAnswer } from '../../src/testing/control-plane.js';
import { guestBytes, patternPrefix } from '../../src/testing/disk-image.js';
import type { GuestConsole } from '../../src/testing/guest-console.js';
import { guestAppend } from '../../src/testing/guest-image.js';
import { startHaLab, type HaLab } from '../../src/testing/ha-lab.js';
import { until } from '../../src/testing/wait.js';

describe('synchronous replication to a second site (real agents, real QEMU)', () => {
  let lab: HaLab;
  let app: string;
  let guest: GuestConsole;
  const ok = (method: string, path: string, body?: unknown) => lab.ok(method, path, body);
  const replicationOf = (vm: string) => ok('GET', `/vms/${vm}/replication`);
  const readyPoints = async (vm: string) =>
    ((await replicationOf(vm)).points as ApiAnswer[]).filter((p) => p.state === 'ready');
  /** The most blocks the guest has said it wrote (it says so every 16 blocks). */
  const reported = () => Math.max(0, ...guest.numbers('pattern'));
  const events = async (type: string) =>
    ((await ok('GET', '/events?limit=1000')).items as ApiAnswer[]).filter(
      (e) => e.type === type && e.objectId === app,
    );
  /** The guest's pattern blocks in a point's image at site B (read through its backing chain). */
  const blocksIn = (image: string) => patternPrefix(guestBytes(image));
  /**
   * The image of the replica's newest ready point (a sync point's is the overlay it froze), read
   * while the replication is paused: a fold rewrites the chain under it (as the DR test does).
   */
  /** Pauses the replication and waits until no cycle of it is under way. */
  const pauseQuietly = async () => {
    await ok('PATCH', `/vms/${app}/replication`, { state: 'paused' });
    await until('no cycle of app under way', async () => {
      const { lastTaskId } = await replicationOf(app);
      if (!lastTaskId) return true;
      const task = await ok('GET', `/tasks/${lastTaskId as string}`);
      return ['succeeded', 'failed', 'cancelled'].includes(task.state as string) || undefined;
    });
  };
  const newestBlocks = async () => {
    await pauseQuietly();
    try {
      const { seq, image } = await newestImage();
      return { seq, blocks: blocksIn(image) };
    } finally {
      await ok('PATCH', `/vms/${app}/replication`, { state: 'active' });
    }
  };
  const newestImage = async () => {
    const { directory } = await replicationOf(app);
    const [newest] = await readyPoints(app);
    const seq = String(newest!.seq).padStart(6, '0');
    const files = readdirSync(directory as string);
    const file = files.find((f) => f === `disk0-s${seq}.qcow2` || f === `disk0-${seq}.qcow2`);
    assert.ok(file, `point ${newest!.seq}'s image among ${files.join(' ')}`);
    return { seq: newest!.seq as number, image: join(directory as string, file) };
  };
  /** The sync standing last read (for a failed wait's message). */
  let lastSync: unknown;
  const syncState = async () => {
    lastSync = (await replicationOf(app)).sync;
    return (lastSync as ApiAnswer).state as string;
  };
  /** What the server logged about replication, for a failed wait's message. */
  const replicationLog = () =>
    lab.server
      .output()
      .split('\n')
      .filter((line) => /replica|mirror|cycle/i.test(line) && !line.includes('"component":"http"'))
      .slice(-15)
      .join('\n');
  const mirroring = async (why: string) => {
    try {
      await until(
        () => `${why}: ${JSON.stringify(lastSync)}`,
        async () => ((await syncState()) === 'mirroring' ? true : undefined),
        120_000,
        250,
      );
    } catch (error) {
      const cycles = ((await ok('GET', `/tasks?targetId=${app}&limit=5`)).items as ApiAnswer[])
        .filter((t) => t.kind === 'replication.cycle')
        .map((t) => ({ state: t.state, error: t.error, result: t.result }));
      throw new Error(
        `${(error as Error).message}\nlast cycles: ${JSON.stringify(cycles)}\n${replicationLog()}`,
        { cause: error },
      );
    }
  };

  before(async () => {
    lab = await startHaLab({
      hosts: ['sy-a', 'sy-b'],
      storage: 'per-host',
      prefix: 'zenith-sync-',
    });
    app = await lab.runVm('app', 'sy-a', 128, {
      cmdline: guestAppend({ pattern: true }),
      diskMiB: 64,
    });
    guest = await lab.openConsole(app);
    await ok('POST', '/sites', { name: 'site-a', hosts: ['sy-a'] });
    await ok('POST', '/sites', { name: 'site-b', hosts: ['sy-b'] });
  });
  after(async () => {
    guest?.close();
    await lab?.close();
  });

  test('protected in sync mode: a first copy, then every write mirrored (RPO 0); each point holds what the guest said it wrote before it; old points are folded inside the running replica', async () => {
    const made = await ok('POST', `/vms/${app}/replication`, {
      targetHost: 'sy-b',
      mode: 'sync',
      rpoSeconds: 60,
      intervalSeconds: 5,
      keepPoints: 2,
    });
    assert.equal(made.mode, 'sync');
    assert.equal(made.sync.state, null, 'not set up before its first copy');
    await mirroring('the mirror set up after the first copy');
    assert.equal((await events('replication.syncEngaged')).length, 1);
    // The RPO is 0 while the mirror holds: as the replication says, and as the VM's facts say.
    await until('the RPO fact at 0', async () => {
      const vm = await ok('GET', `/vms/${app}`);
      return vm.computed['replication.rpoSeconds'] === 0 &&
        vm.computed['replication.syncState'] === 'mirroring'
        ? true
        : undefined;
    });
    assert.equal((await replicationOf(app)).currentRpoSeconds, 0);
    // Each point taken inside the replica holds every block the guest said it wrote before.
    for (let round = 0; round < 2; round++) {
      const said = reported();
      const after = (await readyPoints(app))[0]!.seq as number;
      await until(`a point after ${after}`, async () =>
        ((await readyPoints(app))[0]!.seq as number) > after ? true : undefined,
      );
      const { seq, blocks } = await newestBlocks();
      assert.ok(blocks >= said, `point ${seq} holds ${blocks} blocks; the guest said ${said}`);
    }
    // zenith serve killed: the mirror and the replica live in QEMU and the replica's daemon, not in
    // the control plane; once it is back, points go on and nothing was lost or set up again.
    const seqBefore = (await readyPoints(app))[0]!.seq as number;
    await lab.restartServer('SIGKILL');
    await until(`a point after ${seqBefore} once zenith serve is back`, async () =>
      ((await readyPoints(app))[0]!.seq as number) > seqBefore ? true : undefined,
    );
    // The console is read through zenith serve: read again from the new process.
    guest.close();
    guest = await lab.openConsole(app);
    assert.deepEqual(await events('replication.syncLost'), []);
    assert.equal((await events('replication.syncEngaged')).length, 1);
    const replication = await replicationOf(app);
    assert.equal(replication.sync.state, 'mirroring');
    // Two points kept: the older ones were folded into the base inside the running replica.
    const ready = await readyPoints(app);
    assert.equal(ready.length, 2, JSON.stringify(replication.points));
    const cycles = ((await ok('GET', `/tasks?targetId=${app}&limit=50`)).items as ApiAnswer[])
      .filter((t) => t.kind === 'replication.cycle' && t.state === 'succeeded')
      .map((t) => t.result);
    assert.ok(
      cycles.some((r) => r.scope === 'sync' && r.merged > 0),
      JSON.stringify(cycles),
    );
    // What the folds left: the base, the points kept, and the live overlay; nothing else.
    const images = readdirSync(replication.directory as string).filter((f) => f.endsWith('.qcow2'));
    assert.ok(images.length <= 4, images.join(' '));
  });

  test('the link to site B cut: the silent mirror is given up in seconds and the guest writes on; interval cycles keep the replica once the link is back, and the mirror is set up again', async () => {
    const b = lab.physical['sy-b']!;
    await lab.lab.cutNetwork(b);
    const cutAt = Date.now();
    try {
      await until(
        () => `the mirror given up: ${JSON.stringify(lastSync)}`,
        async () => ((await syncState()) === 'fallback' ? true : undefined),
        90_000,
        250,
      );
      const [lost] = await events('replication.syncLost');
      assert.equal(lost?.data.code, 'ZEN_TIMEOUT', JSON.stringify(lost));
      // The guest's writes no longer wait on B: it goes on writing while the link is down.
      const writing = reported();
      await until(`the guest past block ${writing + 32}`, async () =>
        reported() >= writing + 32 ? true : undefined,
      );
      const given = (await replicationOf(app)).sync.since as number;
      assert.ok(given - cutAt < 60_000, `given up ${(given - cutAt) / 1000} s after the cut`);
    } finally {
      await lab.lab.restoreNetwork(b);
    }
    const said = reported();
    await mirroring('the mirror set up again after the link came back');
    assert.ok((await events('replication.syncEngaged')).length >= 2);
    const cycles = ((await ok('GET', `/tasks?targetId=${app}&limit=100`)).items as ApiAnswer[])
      .filter((t) => t.kind === 'replication.cycle' && t.state === 'succeeded')
      .map((t) => t.result);
    assert.ok(
      cycles.some((r) => r.scope === 'changed'),
      `an interval cycle of what changed kept the replica meanwhile: ${JSON.stringify(cycles)}`,
    );
    const after = (await readyPoints(app))[0]!.seq as number;
    await until(`a point after ${after}`, async () =>
      ((await readyPoints(app))[0]!.seq as number) > after ? true : undefined,
    );
    const { seq, blocks } = await newestBlocks();
    assert.ok(blocks >= said, `point ${seq} holds ${blocks} blocks; the guest said ${said}`);
    // Switched to interval: the mirror and the replica go, the points stay; and back to sync.
    const points = (await readyPoints(app)).length;
    const interval = await ok('PATCH', `/vms/${app}/replication`, { mode: 'interval' });
    assert.equal(interval.mode, 'interval');
    assert.equal(interval.sync, null);
    assert.equal((await readyPoints(app)).length, points);
    const daemons = (await lab.lab.processes(b)).filter((p) =>
      p.command.includes('qemu-storage-daemon'),
    );
    assert.deepEqual(daemons, [], 'no replica daemon runs at B');
    const sync = await ok('PATCH', `/vms/${app}/replication`, { mode: 'sync' });
    assert.equal(sync.sync.state, null);
    await mirroring('the mirror set up again once the replication is sync again');
  });

  test('site A lost with the mirror holding: the failover starts app at B from a last point of the live overlay, and nothing the guest said it wrote is lost', async () => {
    await ok('POST', '/recovery-plans', {
      name: 'rp-sync',
      sourceSite: 'site-a',
      targetSite: 'site-b',
      groups: [{ vms: ['app'] }],
    });
    await mirroring('the mirror holding before the disaster');
    const uuid = (await ok('GET', `/vms/${app}`)).facts['vm.uuid'] as string;
    // Paused: no point is taken on schedule from now on (the mirror runs on), so what the guest
    // writes from here is only in the replica's live overlay.
    await pauseQuietly();
    const before = (await readyPoints(app))[0]!.seq as number;
    // Well past the newest point, so that only the live overlay can hold what it said since.
    const from = reported();
    await until(`the guest past block ${from + 64}`, async () =>
      reported() >= from + 64 ? true : undefined,
    );
    assert.equal(await syncState(), 'mirroring', 'a paused replication keeps its mirror');
    await lab.lab.crash(lab.physical['sy-a']!);
    const lostAt = Date.now();
    const said = reported();
    await until(
      'site A seen gone',
      async () => {
        const host = await ok('GET', '/hosts/sy-a');
        const connection = await ok('GET', `/connections/${host.connectionId as string}`);
        return connection.state !== 'connected' || undefined;
      },
      60_000,
      250,
    );
    const ended = await lab.task('POST', '/recovery-plans/rp-sync/runs', {
      operation: 'failover',
    });
    assert.equal(ended.state, 'succeeded', JSON.stringify(ended.error));
    const [run] = (await ok('GET', '/recovery-plans/rp-sync/runs')).items as ApiAnswer[];
    assert.equal(run!.state, 'done', JSON.stringify(run));
    const replication = await replicationOf(app);
    assert.equal(replication.state, 'recovered');
    // The point it ran from is one taken of the live overlay at the failover, after the last
    // scheduled one; and it holds every block the guest said it wrote before its site was lost.
    const used = (replication.points as ApiAnswer[]).find(
      (p) => p.takenAt === run!.vms[0].pointTakenAt,
    );
    assert.ok(used, JSON.stringify({ run, points: replication.points }));
    assert.equal(used.seq, before + 1, 'the next point after the last one taken');
    assert.ok((used.takenAt as number) >= lostAt, 'taken after site A was lost');
    const image = join(
      replication.directory as string,
      `disk0-s${String(used.seq).padStart(6, '0')}.qcow2`,
    );
    const blocks = blocksIn(image);
    assert.ok(
      blocks >= said,
      `the failover's point holds ${blocks} blocks; the guest said ${said}`,
    );
    assert.equal(run!.dataLossSeconds, 0, 'no data loss window');
    const running = (await lab.qemus()).filter((q) => q.uuid === uuid);
    assert.deepEqual(
      running.map((q) => q.host),
      ['sy-b'],
      'app runs once, at site B',
    );
    // The replica daemon is gone with the mirror: nothing of it runs at B.
    const daemons = (await lab.lab.processes(lab.physical['sy-b']!)).filter((p) =>
      p.command.includes('qemu-storage-daemon'),
    );
    assert.deepEqual(daemons, []);
  });

  test('stopping the replication of the recovered VM removes what it left at site A once A answers again', async () => {
    const diskAtA = () =>
      readdirSync(lab.storageOf('sy-a'), { recursive: true })
        .map(String)
        .find((f) => f.includes('app') && f.endsWith('.qcow2') && !f.includes('fleece'));
    assert.ok(diskAtA(), "app's old disk is still at A");
    const left = ((await replicationOf(app)).leftovers as ApiAnswer[]).map((l) => [
      l.host.name,
      l.reason,
      l.definition,
    ]);
    assert.deepEqual(left, [['sy-a', 'failover', true]]);
    // A comes back (app's QEMU there died with the site): its stale definition shows.
    await lab.machines['sy-a']!.start();
    await lab.connected('sy-a');
    await ok('DELETE', '/recovery-plans/rp-sync');
    const stopped = await lab.api('DELETE', `/vms/${app}/replication`);
    assert.equal(stopped.status, 204, JSON.stringify(stopped.body));
    await until(
      () => `app's disk at A removed (left: ${diskAtA()})`,
      async () => (diskAtA() === undefined ? true : undefined),
      30_000,
      250,
    );
    // It still runs once, at B, from its replica's images there.
    const vm = await ok('GET', `/vms/${app}`);
    assert.equal(vm.computed['location.hostId'], (await ok('GET', '/hosts/sy-b')).id);
    assert.equal(vm.facts['power.state'], 'running');
  });
});
