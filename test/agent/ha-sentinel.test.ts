/**
 * The host's fencing sentinel (src/agent/ha-sentinel.ts): its decisions on a clock of the test's,
 * then the real thing — `sleep` processes standing in for QEMUs, a sentinel run in this process
 * and one started as `zenith agent-sentinel` by the agent's link: fed in time it kills nothing;
 * not fed, it kills exactly the listed processes still the same ones and records them for the
 * agent; one per state directory; told to stand down, it ends and kills nothing.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  monotonicMs,
  processStartTime,
  readJson,
  runningSentinel,
  sentinelPaths,
  writeJsonAtomically,
  type SentinelFeed,
  type SentinelFencing,
  type SentinelVm,
} from '../../src/agent/ha-sentinel-files.js';
import { HaSentinelLink } from '../../src/agent/ha-sentinel-link.js';
import { runSentinel, SentinelState } from '../../src/agent/ha-sentinel.js';
import { silentLogger } from '../../src/core/logger.js';
import { processAlive } from '../../src/core/process.js';
import { until } from '../../src/testing/wait.js';

const zenithBin = join(import.meta.dirname, '../../bin/zenith.js');
const base = mkdtempSync(join(tmpdir(), 'zenith-sentinel-'));
const sleepers: ChildProcess[] = [];
after(() => {
  for (const child of sleepers) child.kill('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

/** A process standing in for a QEMU. */
async function qemu(): Promise<number> {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  sleepers.push(child);
  await new Promise((resolve) => child.once('spawn', resolve));
  return child.pid!;
}

const listed = (pid: number, name = `vm-${pid}`): SentinelVm => ({
  name,
  uuid: `uuid-${name}`,
  pid,
  startTime: processStartTime(pid),
  release: true,
});

let seq = 0;
const feed = (
  stateDir: string,
  killAfterMs: number,
  vms: SentinelVm[],
  standDown = false,
): void => {
  seq += 1;
  writeJsonAtomically(sentinelPaths(stateDir).feed, {
    format: 1,
    boot: 'test',
    seq,
    agentPid: process.pid,
    killAt: monotonicMs() + killAfterMs,
    vms,
    standDown,
  } satisfies SentinelFeed);
};

describe('the fencing sentinel’s decisions', () => {
  const vm = (pid: number): SentinelVm => ({
    name: `vm-${pid}`,
    uuid: null,
    pid,
    startTime: '1',
    release: false,
  });
  const fed = (seqNo: number, killAt: number, vms: SentinelVm[], standDown = false) =>
    ({
      format: 1,
      boot: 'b',
      seq: seqNo,
      agentPid: 1,
      killAt,
      vms,
      standDown,
    }) satisfies SentinelFeed;

  test('kills the last feed’s VMs once its time is up, each once; a newer feed moves the time', () => {
    const state = new SentinelState();
    assert.deepEqual(state.due(0), [], 'nothing armed before a feed');
    assert.equal(state.observe(fed(1, 1000, [vm(10)])), true);
    assert.deepEqual(state.due(999), []);
    assert.equal(state.observe(fed(1, 1000, [vm(10)])), false, 'the same feed read again');
    assert.equal(state.observe(fed(2, 1900, [vm(10), vm(11)])), true);
    assert.deepEqual(state.due(1500), [], 'fed again in time');
    assert.deepEqual(
      state.due(1900).map((v) => v.pid),
      [10, 11],
    );
    assert.deepEqual(state.due(2500), [], 'killed once');
    assert.equal(
      state.done(2500, () => false),
      true,
      'nothing left to guard',
    );
    assert.equal(
      state.done(2500, () => true),
      false,
    );
  });

  test('a feed that says stand down disarms it', () => {
    const state = new SentinelState();
    state.observe(fed(1, 0, [vm(10)]));
    state.observe(fed(2, 0, [], true));
    assert.equal(state.standingDown, true);
    assert.deepEqual(state.due(10_000), []);
  });
});

describe('the fencing sentinel on real processes', () => {
  test('fed in time it kills nothing; not fed, it kills exactly the listed processes and records them', async () => {
    const stateDir = join(base, 'one');
    const [a, b, other] = [await qemu(), await qemu(), await qemu()];
    feed(stateDir, 400, [listed(a), listed(b, 'no-uuid')]);
    const stop = new AbortController();
    const sentinel = runSentinel({ stateDir, logger: silentLogger, signal: stop.signal });
    try {
      await until('the sentinel’s record', async () =>
        runningSentinel(stateDir)?.pid === process.pid ? true : undefined,
      );
      // Fed more often than its time: nothing happens.
      for (let i = 0; i < 6; i++) {
        feed(stateDir, 400, [listed(a), listed(b, 'no-uuid')]);
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
      assert.ok(processAlive(a) && processAlive(b), 'fed: alive');
      assert.equal(existsSync(sentinelPaths(stateDir).fenced), false);
      // No more feeds.
      await until('the listed processes killed', async () =>
        !processAlive(a) && !processAlive(b) ? true : undefined,
      );
      assert.ok(processAlive(other), 'an unlisted process lives');
      const fencing = readJson<SentinelFencing>(sentinelPaths(stateDir).fenced);
      assert.deepEqual(fencing?.vms.map((v) => v.pid).sort(), [a, b].sort());
      assert.ok(typeof fencing?.fencedAt === 'number');
      // Its work done (nothing it guarded runs), it leaves, and its record with it.
      await sentinel;
      assert.equal(runningSentinel(stateDir), null);
    } finally {
      stop.abort();
      await sentinel;
    }
  });

  test('a pid that is another process now (another start time) is not killed', async () => {
    const stateDir = join(base, 'reused');
    const pid = await qemu();
    feed(stateDir, 0, [{ ...listed(pid), startTime: '1' }]);
    const stop = new AbortController();
    const sentinel = runSentinel({ stateDir, logger: silentLogger, signal: stop.signal });
    await new Promise((resolve) => setTimeout(resolve, 500));
    stop.abort();
    await sentinel;
    assert.ok(processAlive(pid));
    assert.equal(existsSync(sentinelPaths(stateDir).fenced), false);
  });

  test('the agent’s link starts one `zenith agent-sentinel`, finds it again, starts another when it is killed, and stands it down', async () => {
    const stateDir = join(base, 'linked');
    const pid = await qemu();
    const command = [process.execPath, zenithBin, 'agent-sentinel'];
    const link = new HaSentinelLink({ stateDir, command, logger: silentLogger });
    link.feed(30_000, [{ name: 'vm', uuid: 'u', pid, release: true }]);
    const first = await until(
      'a sentinel running',
      async () => runningSentinel(stateDir) ?? undefined,
      30_000,
    );
    // A restarted agent (another link on the same directory) feeds the same one.
    const again = new HaSentinelLink({ stateDir, command, logger: silentLogger });
    again.feed(30_000, [{ name: 'vm', uuid: 'u', pid, release: true }]);
    assert.deepEqual(runningSentinel(stateDir), first);
    // A second sentinel started by hand leaves at once: one per state directory.
    const second = spawn(process.execPath, [zenithBin, 'agent-sentinel', '--state-dir', stateDir], {
      stdio: 'ignore',
    });
    const code = await new Promise((resolve) => second.once('exit', resolve));
    assert.equal(code, 0);
    assert.deepEqual(runningSentinel(stateDir), first);
    // Killed alone: the next feed starts another.
    process.kill(first.pid, 'SIGKILL');
    await until('the first sentinel gone', async () =>
      processAlive(first.pid) ? undefined : true,
    );
    const replaced = new HaSentinelLink({ stateDir, command, logger: silentLogger });
    replaced.feed(30_000, [{ name: 'vm', uuid: 'u', pid, release: true }]);
    const next = await until(
      'another sentinel',
      async () => runningSentinel(stateDir) ?? undefined,
      30_000,
    );
    assert.notEqual(next.pid, first.pid);
    // A deliberate stop: it ends, and kills nothing.
    replaced.standDown();
    await until('the sentinel gone', async () => (processAlive(next.pid) ? undefined : true));
    assert.ok(processAlive(pid));
    assert.equal(replaced.takeFenced(), null);
  });
});
