/**
 * Replication and disaster recovery against real peers: two "sites", each a `zenith agent` host in
 * its own PID and network namespace (src/testing/physical-hosts.ts) with a storage directory of its
 * own (nothing shared between sites), managed by one `zenith serve` process. Tiny TCG guests write
 * the numbered pattern to their disks (a block at a time, each durable), so any consistent copy of
 * a disk holds exactly a prefix of the blocks: the tests read the replicas' images with qemu-img
 * and check it. The link between the sites is cut by taking the recovery host's veth down.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ApiAnswer } from '../../src/testing/control-plane.js';
import { guestBytes, patternPrefix } from '../../src/testing/disk-image.js';
import { GUEST_READY_LINE, guestAppend } from '../../src/testing/guest-image.js';
import { launchBrowser } from '../../src/testing/browser.js';
import { adminPassword } from '../../src/testing/control-plane.js';
import { parseCsv } from '../../src/testing/csv-reader.js';
import { cliRunner } from '../../src/testing/server-process.js';
import { startHaLab, type HaLab } from '../../src/testing/ha-lab.js';
import { until } from '../../src/testing/wait.js';

describe('replication to a second site, and recovery plans run there', () => {
  let lab: HaLab;
  const ok = (method: string, path: string, body?: unknown) => lab.ok(method, path, body);
  const api = (method: string, path: string, body?: unknown) => lab.api(method, path, body);
  let web: string;
  let db: string;
  const replicationOf = (vm: string) => ok('GET', `/vms/${vm}/replication`);
  const readyPoints = async (vm: string) =>
    ((await replicationOf(vm)).points as ApiAnswer[]).filter((p) => p.state === 'ready');
  /** The guest's bytes of the newest ready point of the VM's replica, read at the recovery site. */
  const replicaPrefix = async (vm: string) => {
    const replication = await replicationOf(vm);
    const [latest] = (replication.points as ApiAnswer[]).filter((p) => p.state === 'ready');
    const seq = String(latest!.seq).padStart(6, '0');
    return {
      seq: latest!.seq as number,
      blocks: patternPrefix(
        guestBytes(join(replication.directory as string, `disk0-${seq}.qcow2`)),
      ),
    };
  };
  const cycles = async (vm: string, count: number) => {
    const first = ((await readyPoints(vm))[0]?.seq as number | undefined) ?? 0;
    await until(
      `${count} more replication cycles of ${vm}`,
      async () =>
        (((await readyPoints(vm))[0]?.seq as number | undefined) ?? 0) >= first + count ||
        undefined,
      120_000,
      500,
    );
  };
  /** What the server logged about reclaiming leftovers (for a failure's message). */
  const reclaimLog = () =>
    lab.server
      .output()
      .split('\n')
      .filter((line) => /reclaim|left at a host|stale definition|discarded/i.test(line))
      .slice(-20)
      .join('\n');
  /** web's own disk at A, which it left by the planned migration. */
  let webDiskAtA = '';
  const qemuCount = async (uuid: string) => (await lab.qemus()).filter((q) => q.uuid === uuid);
  /**
   * Slows the link to the recovery host (its veth, bridge side: what the control plane sends it) so
   * that a cycle is held in the middle of its copy; answers once a cycle of `vm` is copying, then
   * `during` runs and the link is restored.
   */
  const inTheMiddleOfACycle = async (vm: string, during: () => Promise<void>) => {
    const host = lab.physical['dr-b']!;
    await lab.lab.throttle(host, { mbit: 1, burst: '16kb', latency: '2s' });
    // A cycle that started before the link was slowed may end before anything is done to it
    // (one starts as soon as a replication is resumed): only one started since counts.
    const slowedAt = Date.now();
    try {
      const taskId = await until(
        `a cycle of ${vm} copying, started once the link was slow`,
        async () => {
          const r = await replicationOf(vm);
          if (!(r.points as ApiAnswer[]).some((p) => p.state === 'writing')) return undefined;
          const task = await ok('GET', `/tasks/${r.lastTaskId as string}`);
          return task.state === 'running' &&
            (task.startedAt as number) >= slowedAt &&
            (task.progress as number) > 0
            ? (task.id as string)
            : undefined;
        },
        120_000,
        100,
      );
      await during();
      return taskId;
    } finally {
      await lab.lab.throttle(host, null);
    }
  };
  /**
   * The replica's directory holds whole images only: `points` of them, nothing half-written. Read
   * with the replication paused and no cycle under way: on a loaded machine the next cycle may
   * start as soon as one ends, and its own point is `writing` while it runs.
   */
  const wholeImagesOnly = async (vm: string, points: number) => {
    const active = (await replicationOf(vm)).state === 'active';
    if (active) await ok('PATCH', `/vms/${vm}/replication`, { state: 'paused' });
    try {
      await until('no cycle under way', async () => {
        const { lastTaskId } = await replicationOf(vm);
        if (!lastTaskId) return true;
        const task = await ok('GET', `/tasks/${lastTaskId as string}`);
        return ['succeeded', 'failed', 'cancelled'].includes(task.state as string) || undefined;
      });
      await checkWholeImages(vm, points);
    } finally {
      if (active) await ok('PATCH', `/vms/${vm}/replication`, { state: 'active' });
    }
  };
  const checkWholeImages = async (vm: string, points: number) => {
    const replication = await replicationOf(vm);
    assert.equal(
      (replication.points as ApiAnswer[]).filter((p) => p.state === 'writing').length,
      0,
    );
    const files = readdirSync(replication.directory as string);
    assert.equal(files.filter((f) => f.endsWith('.zenith-partial')).length, 0, files.join(' '));
    assert.equal(files.filter((f) => /^disk0-\d+\.qcow2$/.test(f)).length, points, files.join(' '));
  };
  const cycleFailedEvents = async (vm: string) =>
    ((await ok('GET', '/events?limit=1000')).items as ApiAnswer[]).filter(
      (e) => e.type === 'replication.cycleFailed' && e.objectId === vm,
    );

  before(async () => {
    lab = await startHaLab({
      hosts: ['dr-a', 'dr-b'],
      storage: 'per-host',
      // Site B's storage a tmpfs, to fill up in a test.
      storageLimitsMiB: { 'dr-b': 1024 },
      // Site A's host is behind a (simulated Redfish) BMC: a failover fences it.
      bmcHosts: ['dr-a'],
      agentGuests: true,
      prefix: 'zenith-dr-',
    });
    const pattern = guestAppend({ pattern: true });
    [web, db] = await Promise.all([
      lab.runVm('web', 'dr-a', 128, { cmdline: pattern, diskMiB: 64 }),
      // db runs qemu-ga: its plan waits for its guest agent.
      lab.runVm('db', 'dr-a', 192, {
        cmdline: guestAppend({ pattern: true, agent: true }),
        diskMiB: 8,
        agent: true,
      }),
    ]);
    await ok('POST', '/sites', { name: 'site-a', hosts: ['dr-a'] });
    await ok('POST', '/sites', { name: 'site-b', hosts: ['dr-b'] });
  });
  after(async () => {
    await lab?.close();
  });

  test('bad input is refused with a coded error and nothing written', async () => {
    const sameSite = await api('POST', `/vms/${web}/replication`, {
      targetHost: 'dr-a',
      rpoSeconds: 60,
    });
    assert.equal(sameSite.status, 400);
    const slow = await api('POST', `/vms/${web}/replication`, {
      targetHost: 'dr-b',
      rpoSeconds: 60,
      intervalSeconds: 120,
    });
    assert.equal(slow.body.error.code, 'ZEN_BAD_REQUEST');
    const taken = await api('POST', '/sites', { name: 'again', hosts: ['dr-a'] });
    assert.equal(taken.body.error.code, 'ZEN_CONFLICT', 'a host belongs to one site at most');
    const unprotected = await api('POST', '/recovery-plans', {
      name: 'early',
      sourceSite: 'site-a',
      targetSite: 'site-b',
      groups: [{ vms: ['web'] }],
    });
    assert.equal(unprotected.status, 422);
    assert.equal(unprotected.body.error.code, 'ZEN_RECOVERY_PLAN_BLOCKED');
    assert.match(JSON.stringify(unprotected.body.error.details.problems), /web is not replicated/);
    assert.equal((await ok('GET', '/replications')).items.length, 0);
    assert.equal((await ok('GET', '/recovery-plans')).items.length, 0);
  });

  test('each cycle sends only what changed, keeps its points, and holds the RPO while the guests write', async () => {
    for (const vm of [web, db])
      await ok('POST', `/vms/${vm}/replication`, {
        targetHost: 'dr-b',
        rpoSeconds: 60,
        intervalSeconds: 5,
        keepPoints: 2,
      });
    await cycles(web, 3);
    await cycles(db, 1);
    // Paused, so that no cycle is between making its point ready and folding the oldest away.
    await ok('PATCH', `/vms/${web}/replication`, { state: 'paused' });
    await until('no cycle of web under way', async () => {
      const r = await replicationOf(web);
      const task = await ok('GET', `/tasks/${r.lastTaskId as string}`);
      return ['succeeded', 'failed', 'cancelled'].includes(task.state as string) || undefined;
    });
    const replication = await replicationOf(web);
    assert.equal(replication.targetSite.name, 'site-b');
    assert.equal(replication.sourceSite.name, 'site-a');
    assert.ok(
      replication.currentRpoSeconds < 60,
      `RPO ${replication.currentRpoSeconds} s under its 60 s target`,
    );
    const ready = (replication.points as ApiAnswer[]).filter((p) => p.state === 'ready');
    assert.equal(ready.length, 2, 'two points kept: the older ones were folded into the base');
    const report = (await ok('GET', `/replications/report?vm=web`)).items as ApiAnswer[];
    assert.ok(report.length >= 3);
    const [first, ...later] = report;
    // The first cycle copies what holds data; later ones what the guest wrote since (a few MiB of
    // its 64 MiB disk in 5 s), never the whole disk.
    assert.ok(first!.readBytes < 64 * 2 ** 20);
    for (const row of later)
      assert.ok(row.readBytes <= 16 * 2 ** 20, `cycle ${row.seq} read ${row.readBytes} bytes`);
    assert.ok(report.every((row) => row.rpoAfterSeconds < 60));
    // The replica is a consistent copy of one instant (a prefix of the pattern), not written since.
    const { blocks } = await replicaPrefix(web);
    assert.ok(blocks > 0, `the replica holds ${blocks} pattern blocks`);
    const vm = await ok('GET', `/vms/${web}`);
    assert.equal(vm.computed['replication.targetHostId'], replication.targetHost.id);
    assert.equal(typeof vm.computed['replication.rpoSeconds'], 'number');
    // The images on site B: two points, nothing half-written.
    const files = readdirSync(replication.directory as string);
    assert.equal(files.filter((f) => f.endsWith('.zenith-partial')).length, 0);
    assert.equal(files.filter((f) => /^disk0-\d+\.qcow2$/.test(f)).length, 2, files.join(' '));
  });

  test('a plan whose VMs the recovery site has no memory for is refused before it starts, with the list', async () => {
    // Placement's figures: dr-b's memory at the lowest overcommit a policy allows (0.1), and a VM
    // asking for more than that (defined, stopped: a stopped VM is replicated all the same).
    const total = (await ok('GET', '/hosts/dr-b')).facts['memory.totalBytes'] as number;
    const bigMiB = Math.ceil((total * 0.1) / 2 ** 20) + 256;
    const big = await lab.runVm('big', 'dr-a', bigMiB, { start: false });
    try {
      await ok('POST', `/vms/${big}/replication`, {
        targetHost: 'dr-b',
        rpoSeconds: 60,
        intervalSeconds: 30,
      });
      await cycles(big, 1);
      await ok('POST', '/recovery-plans', {
        name: 'rp-big',
        sourceSite: 'site-a',
        targetSite: 'site-b',
        groups: [{ vms: ['big'] }],
      });
      await ok('POST', '/policies', {
        name: 'tight',
        scope: { kind: 'global' },
        settings: { memoryOvercommit: 0.1 },
      });
      try {
        const preview = await ok('GET', '/recovery-plans/rp-big/preview?operation=failover');
        assert.equal(preview.problems.length, 1, JSON.stringify(preview.problems));
        assert.match(
          preview.problems[0].problem as string,
          new RegExp(
            `^dr-b has \\d+ MiB of memory free, and the plan's VMs there need ${bigMiB} MiB$`,
          ),
        );
        const refused = await api('POST', '/recovery-plans/rp-big/runs', { operation: 'test' });
        assert.equal(refused.status, 422);
        assert.equal(refused.body.error.code, 'ZEN_RECOVERY_PLAN_BLOCKED');
        assert.equal(refused.body.error.details.problems[0].vm.name, 'big');
        assert.equal(
          (await ok('GET', '/recovery-plans/rp-big/runs')).items.length,
          0,
          'nothing was started',
        );
      } finally {
        await ok('DELETE', '/policies/tight');
      }
      const fits = await ok('GET', '/recovery-plans/rp-big/preview?operation=failover');
      assert.deepEqual(fits.problems, [], 'with the memory back, nothing stops it');
      // A group that waits on a guest agent, of a VM with no guest agent channel: refused.
      await ok('POST', '/recovery-plans', {
        name: 'rp-big-agent',
        sourceSite: 'site-a',
        targetSite: 'site-b',
        groups: [{ vms: ['big'], guestAgent: true }],
      });
      const noAgent = await ok('GET', '/recovery-plans/rp-big-agent/preview?operation=test');
      assert.deepEqual(
        noAgent.problems.map((p: ApiAnswer) => p.problem),
        ['its group waits on a guest agent, and it has no guest agent channel'],
      );
    } finally {
      await api('DELETE', '/recovery-plans/rp-big');
      await api('DELETE', '/recovery-plans/rp-big-agent');
      await api('DELETE', `/vms/${big}/replication`);
      await lab.task('DELETE', `/vms/${big}`);
    }
  });

  test('a cycle cut off by the link between the sites leaves the last replica intact', async () => {
    const before = await replicaPrefix(web);
    await until('no cycle of web under way', async () => {
      const r = await replicationOf(web);
      if (!r.lastTaskId) return true;
      const task = await ok('GET', `/tasks/${r.lastTaskId as string}`);
      return ['succeeded', 'failed', 'cancelled'].includes(task.state as string) || undefined;
    });
    // The cycle the resume starts meets a link that is down (cut first: a cycle started before
    // could end whole, and its retention merge then wait on the cut link).
    await lab.lab.cutNetwork(lab.physical['dr-b']!);
    try {
      await ok('PATCH', `/vms/${web}/replication`, { state: 'active' });
      const failed = await until(
        'a cycle of web failed',
        async () => {
          const r = await replicationOf(web);
          if (!r.lastTaskId) return undefined;
          const task = await ok('GET', `/tasks/${r.lastTaskId as string}`);
          return task.state === 'failed' ? task : undefined;
        },
        90_000,
        250,
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}\n${lab.server.output().slice(-4000)}`);
      });
      assert.match(failed.error.code as string, /^ZEN_/);
      // Read while the link is still down (no cycle can end): the replica at site B.
      const after = await replicaPrefix(web);
      assert.equal(after.seq, before.seq, 'the last ready point is the same');
      assert.ok(after.blocks >= before.blocks);
    } finally {
      await lab.lab.restoreNetwork(lab.physical['dr-b']!);
    }
    await lab.connected('dr-b');
    await cycles(web, 1);
    const files = readdirSync((await replicationOf(web)).directory as string);
    assert.equal(files.filter((f) => f.endsWith('.zenith-partial')).length, 0, files.join(' '));
  });

  test('a cycle cut off by a kill -9 of zenith serve is undone after the restart, and the next one is whole', async () => {
    const before = await replicaPrefix(web);
    await inTheMiddleOfACycle(web, () => lab.restartServer('SIGKILL'));
    await lab.connected('dr-b');
    await cycles(web, 1);
    const after = await replicaPrefix(web);
    assert.ok(after.seq > before.seq, 'a whole cycle came after the one cut off');
    await wholeImagesOnly(web, 2);
  });

  test('the recovery host killed in the middle of a cycle: the cycle fails with a coded error and an event, the last replica stays, and the next cycle after its return is whole', async () => {
    const failedBefore = (await cycleFailedEvents(web)).length;
    // Read while the cycle copies (cycles of a VM run one at a time): the point it would follow.
    let before = { seq: 0, blocks: 0 };
    const cutOff = await inTheMiddleOfACycle(web, async () => {
      before = await replicaPrefix(web);
      await lab.machines['dr-b']!.stop();
    });
    try {
      const failed = await lab.taskEnded(cutOff, 90_000);
      assert.equal(failed.state, 'failed');
      assert.match(failed.error.code as string, /^ZEN_/);
      const events = await cycleFailedEvents(web);
      assert.ok(events.length > failedBefore, 'the failed cycle is an event');
      assert.ok(
        events.slice(failedBefore).some((e) => e.data.code === failed.error.code),
        JSON.stringify(events.map((e) => e.data)),
      );
      // Its host down, no cycle can end: the replica at site B is the one before.
      const kept = await replicaPrefix(web);
      assert.equal(kept.seq, before.seq, 'the last ready point is the same');
      assert.ok(kept.blocks >= before.blocks, 'and it reads as a whole prefix of the pattern');
    } finally {
      await lab.machines['dr-b']!.start();
    }
    await lab.connected('dr-b');
    await cycles(web, 1);
    assert.ok((await replicaPrefix(web)).seq > before.seq);
    await wholeImagesOnly(web, 2);
  });

  test("the recovery site's storage full: cycles fail with ZEN_STORAGE_FULL and an event, the last replica stays, and they go on once there is room", async () => {
    // No room left at all: not even a new image's metadata fits.
    await lab.setStorageLimit('dr-b', 0, { free: true });
    let before: { seq: number; blocks: number };
    try {
      const failed = await until(
        'a cycle of web failed',
        async () => {
          const r = await replicationOf(web);
          const task = await ok('GET', `/tasks/${r.lastTaskId as string}`);
          return task.state === 'failed' ? task : undefined;
        },
        90_000,
        250,
      );
      assert.equal(failed.error.code, 'ZEN_STORAGE_FULL', JSON.stringify(failed.error));
      assert.match(failed.error.message as string, /disk0-\d+\.qcow2: the storage is full/);
      const failures = await cycleFailedEvents(web);
      assert.equal(failures.at(-1)!.data.code, 'ZEN_STORAGE_FULL');
      const shown = await replicationOf(web);
      assert.equal(shown.lastCycleError?.code, 'ZEN_STORAGE_FULL', 'the replication says why');
      // While it stays full, every cycle fails the same way and the last replica stays whole.
      before = await replicaPrefix(web);
      await until(
        'another cycle of web failed',
        async () => ((await cycleFailedEvents(web)).length > failures.length ? true : undefined),
        60_000,
        250,
      );
      assert.equal((await cycleFailedEvents(web)).at(-1)!.data.code, 'ZEN_STORAGE_FULL');
      const kept = await replicaPrefix(web);
      assert.equal(kept.seq, before.seq, 'the last ready point is the same');
      assert.ok(kept.blocks >= before.blocks);
      const files = readdirSync((await replicationOf(web)).directory as string);
      assert.equal(files.filter((f) => f.endsWith('.zenith-partial')).length, 0, files.join(' '));
    } finally {
      await lab.setStorageLimit('dr-b', 1024 * 2 ** 20);
    }
    await cycles(web, 1);
    assert.ok((await replicaPrefix(web)).seq > before.seq);
    await wholeImagesOnly(web, 2);
    assert.equal((await replicationOf(web)).lastCycleError, null, 'a cycle went through since');
  });

  test('a test failover boots copies isolated at site B while production and replication go on; cleanup removes them', async () => {
    await ok('POST', '/recovery-plans', {
      name: 'rp-web',
      sourceSite: 'site-a',
      targetSite: 'site-b',
      groups: [{ vms: ['web'], marker: GUEST_READY_LINE, timeoutSeconds: 120 }],
      // The test guest has no ACPI handler: it is powered off after 2 s (its writes are durable).
      shutdownTimeoutSeconds: 2,
    });
    const run = await lab.task(
      'POST',
      '/recovery-plans/rp-web/runs',
      { operation: 'test' },
      180_000,
    );
    assert.equal(run.state, 'succeeded', JSON.stringify(run.error));
    const [step] = run.result.vms as ApiAnswer[];
    assert.equal(step!.state, 'up');
    const copy = await ok('GET', `/vms/${step!.runVmId as string}`);
    assert.notEqual(copy.id, web, 'a copy of its own');
    assert.match(copy.name as string, /^web-test-/);
    assert.equal(copy.computed['location.hostId'], (await ok('GET', '/hosts/dr-b')).id);
    // Production runs on, and replication goes on beside the test.
    const production = await ok('GET', `/vms/${web}`);
    assert.equal(production.facts['power.state'], 'running');
    assert.equal(production.computed['location.hostId'], (await ok('GET', '/hosts/dr-a')).id);
    await cycles(web, 1);
    const cleaned = await lab.task(
      'POST',
      `/recovery-plans/rp-web/runs/${run.result.id as string}/cleanup`,
    );
    assert.equal(cleaned.state, 'succeeded', JSON.stringify(cleaned.error));
    const gone = await api('GET', `/vms/${copy.id as string}`);
    assert.ok(gone.status === 404 || gone.body.status !== 'present', 'the copy is gone');
    const early = await api('POST', '/recovery-plans/rp-web/reprotect');
    assert.equal(early.status, 422, 'web runs at its own site: nothing to reprotect');
    assert.equal((await qemuCount(copy.facts['vm.uuid'] as string)).length, 0);
  });

  test('a planned migration loses nothing: the VM stops at A, replicates a last time and runs at B as itself', async () => {
    const uuid = (await ok('GET', `/vms/${web}`)).facts['vm.uuid'] as string;
    const run = await lab.task(
      'POST',
      '/recovery-plans/rp-web/runs',
      { operation: 'planned' },
      240_000,
    );
    assert.equal(run.state, 'succeeded', JSON.stringify(run.error));
    const moved = await ok('GET', `/vms/${web}`);
    assert.equal(moved.computed['location.hostId'], (await ok('GET', '/hosts/dr-b')).id);
    const running = await qemuCount(uuid);
    assert.deepEqual(
      running.map((q) => q.host),
      ['dr-b'],
      'it runs once, at site B',
    );
    // Every block it wrote at A is in the disk it runs from at B (the guest rewrites the same blocks).
    const sourceDisk = readdirSync(lab.storageOf('dr-a'), { recursive: true })
      .map(String)
      .find((f) => f.includes('web') && f.endsWith('.qcow2') && !f.includes('fleece'));
    assert.ok(sourceDisk, 'the stopped source disk is still at A');
    webDiskAtA = join(lab.storageOf('dr-a'), sourceDisk);
    const written = patternPrefix(guestBytes(join(lab.storageOf('dr-a'), sourceDisk)));
    // The point of the last cycle (what the VM runs on at B, under its own overlay; the overlay
    // itself is written by the guest now, so it is not read while it runs).
    const { blocks } = await replicaPrefix(web);
    assert.ok(blocks >= written, `all ${written} blocks are at B (${blocks})`);
    // Newest first: running at B; before it (the plan waits on its console marker) held
    // suspended at B until its console was read, the interval the move opened; before that, A.
    const history = (await ok('GET', `/vms/${web}/location-history`)).items as ApiAnswer[];
    assert.equal(history[0]!.hostName, 'dr-b');
    assert.equal(history[0]!.powerState, 'running');
    const left = history.findIndex((entry) => entry.hostName === 'dr-a');
    const arrived = history[left - 1]!;
    assert.equal(arrived.hostName, 'dr-b');
    assert.equal(arrived.reason, 'failover', JSON.stringify(history.slice(0, left + 1)));
    const recovered = await replicationOf(web);
    assert.equal(recovered.state, 'recovered');
    // What it left at A: its definition there and its disk, until A holds a replica again.
    const leftAtA = (recovered.leftovers as ApiAnswer[]).map((l) => [
      l.host.name,
      l.reason,
      l.definition,
      l.images,
    ]);
    assert.deepEqual(leftAtA, [['dr-a', 'planned', true, 1]]);
  });

  test('reprotect replicates web back to site A and turns the plan round; its planned migration fails back; what it left at each site goes once a new replica there is ready', async () => {
    const uuid = (await ok('GET', `/vms/${web}`)).facts['vm.uuid'] as string;
    // The chain web runs from at B (under its run overlay).
    const chainAtB = (await replicationOf(web)).directory as string;
    const turned = await ok('POST', '/recovery-plans/rp-web/reprotect');
    assert.deepEqual([turned.sourceSite.name, turned.targetSite.name], ['site-b', 'site-a']);
    const back = await replicationOf(web);
    assert.equal(back.targetHost.name, 'dr-a', 'back to the host it left');
    assert.equal(back.state, 'active');
    assert.ok(existsSync(webDiskAtA), 'its old disk at A stays until a replica at A is ready');
    await cycles(web, 1);
    // A holds a ready copy of web again: its stale definition there and its old disk go.
    await until(
      'the disk web left at A reclaimed',
      // The file goes first, then the record of it (the view reads the record).
      async () =>
        (!existsSync(webDiskAtA) &&
          !((await replicationOf(web)).leftovers as ApiAnswer[]).some(
            (l) => l.host.name === 'dr-a',
          )) ||
        undefined,
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${reclaimLog()}`);
    });
    assert.ok(existsSync(chainAtB), 'the chain web runs from at B stays');
    const leftNow = ((await replicationOf(web)).leftovers as ApiAnswer[]).map((l) => [
      l.host.name,
      l.reason,
      l.definition,
    ]);
    assert.deepEqual(leftNow, [['dr-b', 'reprotect', false]]);
    const run = await lab.task(
      'POST',
      '/recovery-plans/rp-web/runs',
      { operation: 'planned' },
      240_000,
    );
    assert.equal(run.state, 'succeeded', JSON.stringify(run.error));
    const home = await ok('GET', `/vms/${web}`);
    assert.equal(home.computed['location.hostId'], (await ok('GET', '/hosts/dr-a')).id);
    assert.deepEqual(
      (await qemuCount(uuid)).map((q) => q.host),
      ['dr-a'],
      'it runs once, at site A',
    );
    // Its last point at A (what it runs on there; the running overlay is not read while written).
    assert.ok((await replicaPrefix(web)).blocks > 0, 'its data came back');
    assert.ok(existsSync(chainAtB), 'what web ran from at B stays while no new replica is there');
    // Protected again towards B: once that replica is ready, the old chain at B goes.
    const again = await ok('POST', '/recovery-plans/rp-web/reprotect');
    assert.deepEqual([again.sourceSite.name, again.targetSite.name], ['site-a', 'site-b']);
    await cycles(web, 1);
    await until(
      'the chain web left at B reclaimed',
      async () => !existsSync(chainAtB) || undefined,
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${reclaimLog()}`);
    });
    assert.deepEqual(
      (await qemuCount(uuid)).map((q) => q.host),
      ['dr-a'],
      'it still runs once, at site A',
    );
  });

  test('a disaster: site A lost; the control plane killed mid-failover resumes it; db runs once, its loss bounded by the RPO', async () => {
    await ok('POST', '/recovery-plans', {
      name: 'rp-db',
      sourceSite: 'site-a',
      targetSite: 'site-b',
      groups: [{ vms: ['db'], guestAgent: true }],
    });
    assert.equal((await ok('GET', '/recovery-plans/rp-db')).groups[0].guestAgent, true);
    const uuid = (await ok('GET', `/vms/${db}`)).facts['vm.uuid'] as string;
    await cycles(db, 1);
    // Site A goes: its host and everything on it killed at once.
    await lab.lab.crash(lab.physical['dr-a']!);
    const lostAt = Date.now();
    await until(
      'site A seen gone',
      async () => {
        const host = await ok('GET', '/hosts/dr-a');
        const connection = await ok('GET', `/connections/${host.connectionId as string}`);
        return connection.state !== 'connected' || undefined;
      },
      60_000,
      250,
    );
    const submitted = await ok('POST', '/recovery-plans/rp-db/runs', { operation: 'failover' });
    await lab.restartServer('SIGKILL');
    const ended = await lab.taskEnded(submitted.id as string, 240_000);
    assert.equal(ended.state, 'succeeded', JSON.stringify(ended.error));
    const exported = await ok('GET', '/recovery-plans/rp-db/export');
    assert.equal(exported.format, 'zenith-recovery-plan/1');
    assert.equal(exported.vms[0].description.uuid, uuid, 'the description a second Zenith runs');
    assert.match(exported.vms[0].point.disks[0].path as string, /disk0-\d+\.qcow2$/);
    const [runView] = (await ok('GET', '/recovery-plans/rp-db/runs')).items as ApiAnswer[];
    assert.equal(runView!.state, 'done');
    // Its BMC still answered: the lost host was powered off and read back off before db started.
    assert.equal(runView!.vms[0].fenced?.host.name, 'dr-a', JSON.stringify(runView!.vms[0]));
    assert.ok(runView!.vms[0].fenced.at <= runView!.vms[0].upAt);
    assert.equal(lab.sim!.machine('System1').power, 'Off');
    assert.ok(runView!.rtoSeconds > 0);
    assert.ok(
      runView!.dataLossSeconds <= 60 + (Date.now() - lostAt) / 1000,
      `data loss window ${runView!.dataLossSeconds} s`,
    );
    const running = await qemuCount(uuid);
    assert.deepEqual(
      running.map((q) => q.host),
      ['dr-b'],
      'db runs exactly once, at site B',
    );
    const moved = await ok('GET', `/vms/${db}`);
    assert.equal(moved.computed['location.hostId'], (await ok('GET', '/hosts/dr-b')).id);
    const [now] = (await ok('GET', `/vms/${db}/location-history`)).items as ApiAnswer[];
    assert.equal(now!.reason, 'failover');
  });

  test('the web console shows the sites, each protected VM with its RPO, and the plans with their last run', async () => {
    const browser = await launchBrowser();
    try {
      const watched = await browser.newPage();
      const { page } = watched;
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(lab.server.url);
      await page.getByLabel('User name').fill('admin');
      await page.getByLabel(/^Password/).fill(adminPassword);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('link', { name: 'Disaster recovery' }).click();
      const vms = page.getByRole('table', { name: 'Replicated VMs' });
      await vms.getByRole('row', { name: /^web / }).waitFor({ timeout: 30_000 });
      const db = await vms.getByRole('row', { name: /^db / }).innerText();
      assert.match(db, /recovered/, db);
      assert.match(await page.getByRole('table', { name: 'Sites' }).innerText(), /site-a\s+dr-a/);
      // The RPO chart of the first VM: a line of its points against the target.
      await page.getByLabel('RPO over time of').selectOption({ label: 'db' });
      await page
        .getByLabel('RPO of db over time')
        .locator('.recharts-line')
        .first()
        .waitFor({ timeout: 10_000 });
      const plan = await page.getByLabel('Recovery plan rp-db').innerText();
      assert.match(plan, /Last run: failover done/, plan);
      assert.match(plan, /RTO \d+ s/, plan);
      assert.match(plan, /up \(dr-a fenced\)/, plan);
      const overflow = await page.evaluate(
        () =>
          (
            globalThis as unknown as {
              document: { documentElement: { scrollWidth: number; clientWidth: number } };
            }
          ).document.documentElement.scrollWidth -
          (globalThis as unknown as { document: { documentElement: { clientWidth: number } } })
            .document.documentElement.clientWidth,
      );
      assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px`);
      assert.deepEqual(watched.errors(), []);
    } finally {
      await browser.close();
    }
  });
  test('the zenith command shows the sites, the replicated VMs with their RPO, the plans, their runs and what stops one', async () => {
    const zenith = cliRunner(lab.server.url);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
    /** Standard output, with the table's box drawing turned into spaces. */
    const out = async (args: string[]) => {
      const result = await zenith(args);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      return result.stdout.replace(/[│┌┐└┘├┤┬┴┼─]/g, ' ');
    };
    assert.match(await out(['sites', 'list']), /site-a\s+dr-a\s/);
    const replicated = await out(['replication', 'list']);
    assert.match(replicated, /db\s+dr-b \(site-b\)\s+recovered\s/, replicated);
    assert.match(replicated, /web\s+dr-b \(site-b\)\s+active\s/, replicated);
    // web runs at A on the chain its reprotect left there: shown, kept while it runs on it.
    assert.match(
      await out(['replication', 'show', 'web']),
      /left at dr-a\s+\d+ images \(reprotect, since .*reclaimed once a replica there is ready\)/,
    );
    const plan = await out(['recovery-plans', 'show', 'rp-db']);
    assert.match(plan, /group 1\s+db \(up: its guest agent answers\), 300 s/, plan);
    const runs = await out(['recovery-plans', 'runs', 'rp-db']);
    assert.match(runs, /\(failover, done\)/, runs);
    assert.match(runs, /rto\s+\d+\.\d s/, runs);
    assert.match(runs, /fenced\s+dr-a \(through its BMC, off in \d+\.\d s\)/, runs);
    assert.match(runs, /1\s+db\s+up\s+dr-b\s/, runs);
    const preview = await zenith(['recovery-plans', 'preview', 'rp-db', 'failover']);
    assert.equal(preview.code, 0, preview.stderr);
    assert.match(
      preview.stderr,
      /cannot run: db: it runs from its replica already \(reprotect it first\)/,
    );
    const report = parseCsv(await out(['replication', 'report', '--vm', 'db', '--csv']));
    assert.ok(report.length >= 2, `${report.length} rows`);
  });
});
