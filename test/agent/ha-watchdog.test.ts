/**
 * The agent's high-availability watchdog on a manual clock, with VMs and storage of its own
 * (fakes speaking the watchdog's interfaces): the heartbeat goes where the VMs' disks are and its
 * counter advances every beat; a host that loses the control plane but not its storage applies
 * its isolation response after isolationSeconds and lists the VMs it turned off as released; one
 * that loses both kills its VMs after selfFenceSeconds, and only then; a restarted agent takes up
 * its kept settings and its last heartbeat.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import {
  HaWatchdog,
  sentinelGuardFor,
  sentinelGuardMs,
  type HaLocalVm,
  type HaPersistedState,
  type HaVmControl,
  type HeartbeatStorage,
} from '../../src/agent/ha-watchdog.js';
import type { HaAgentSettings } from '../../src/protocols/agent-channel/ha-values.js';
import type { HaHeartbeat } from '../../src/protocols/ha-heartbeat.js';
import type { SentinelFencing } from '../../src/agent/ha-sentinel-files.js';
import type { HaSentinelControl } from '../../src/agent/ha-sentinel-link.js';
import { captureLogs } from '../../src/testing/log-capture.js';
import { isolationAddress } from '../../src/agent/ha-host.js';
import { spawn } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

class FakeVms implements HaVmControl {
  readonly calls: string[] = [];
  constructor(public list: HaLocalVm[]) {}
  vms(): HaLocalVm[] {
    return this.list.map((vm) => ({ ...vm }));
  }
  async shutdown(id: string, timeoutMs: number): Promise<void> {
    this.calls.push(`shutdown ${id} ${timeoutMs}`);
    this.#off(id);
  }
  async powerOff(id: string): Promise<void> {
    this.calls.push(`power-off ${id}`);
    this.#off(id);
  }
  kill(pid: number): void {
    this.calls.push(`kill ${pid}`);
    const vm = this.list.find((v) => v.pid === pid);
    if (vm) vm.pid = null;
  }
  #off(id: string): void {
    const vm = this.list.find((v) => v.id === id);
    if (vm) vm.pid = null;
  }
}

class FakeStorage implements HeartbeatStorage {
  readonly files = new Map<string, HaHeartbeat>();
  broken = false;
  async write(root: string, heartbeat: HaHeartbeat): Promise<void> {
    if (this.broken) throw new Error('EIO: the storage is gone');
    this.files.set(`${root}/${heartbeat.host}`, structuredClone(heartbeat));
  }
  async read(root: string, hostName: string): Promise<HaHeartbeat | null> {
    return this.files.get(`${root}/${hostName}`) ?? null;
  }
}

const vm = (n: number, root = '/shared'): HaLocalVm => ({
  id: `q${n}`,
  name: `vm-${n}`,
  uuid: `uuid-${n}`,
  pid: 1000 + n,
  transient: false,
  diskFiles: [`${root}/vm-${n}/disk0.qcow2`],
});

const settings = (changes: Partial<HaAgentSettings> = {}): HaAgentSettings => ({
  enabled: true,
  isolationResponse: 'power-off',
  isolationSeconds: 5,
  selfFenceSeconds: 10,
  heartbeatMs: 1000,
  ...changes,
});

/** The sentinel as the watchdog sees it: what it was fed, and when it would kill. */
class FakeSentinel implements HaSentinelControl {
  readonly feeds: Array<{ at: number; killAfterMs: number; pids: number[] }> = [];
  standDowns = 0;
  fencing: SentinelFencing | null = null;
  constructor(private readonly clock: ManualClock) {}
  feed(killAfterMs: number, vms: Array<{ pid: number }>): void {
    this.feeds.push({ at: this.clock.now(), killAfterMs, pids: vms.map((v) => v.pid) });
  }
  standDown(): void {
    this.standDowns += 1;
  }
  takeFenced(): SentinelFencing | null {
    const fencing = this.fencing;
    this.fencing = null;
    return fencing;
  }
  /** When it would kill, as last fed. */
  get deadline(): number {
    const last = this.feeds.at(-1)!;
    return last.at + last.killAfterMs;
  }
}

function setUp(options: {
  vms?: HaLocalVm[];
  kept?: HaPersistedState;
  storage?: FakeStorage;
  sentinel?: (clock: ManualClock) => HaSentinelControl;
  network?: { answers(): Promise<boolean> };
}) {
  const clock = new ManualClock();
  const vms = new FakeVms(options.vms ?? [vm(1), vm(2)]);
  const storage = options.storage ?? new FakeStorage();
  let kept: HaPersistedState | null = options.kept ?? null;
  const logs = captureLogs();
  const watchdog = new HaWatchdog({
    hostName: 'host-a',
    storageRoots: ['/shared', '/local', '/other'],
    vms,
    storage,
    state: { load: () => kept, save: (state) => (kept = structuredClone(state)) },
    clock,
    logger: logs.logger,
    ...(options.sentinel ? { sentinel: options.sentinel(clock) } : {}),
    ...(options.network ? { network: options.network } : {}),
  });
  /** Moves time on a second at a time; the control plane answers each second while `heard`. */
  const seconds = async (n: number, heard: boolean) => {
    for (let i = 0; i < n; i++) {
      if (heard) watchdog.channelHeard();
      // Writes under way settle first (as they do in the second between two beats).
      await new Promise((resolve) => setImmediate(resolve));
      await clock.advance(1000);
    }
  };
  const heartbeat = (root = '/shared') => storage.files.get(`${root}/host-a`);
  return { clock, vms, storage, watchdog, seconds, heartbeat, logs, kept: () => kept };
}

describe('the HA watchdog', () => {
  test('does nothing until configured; then writes the heartbeat every beat, only where its VMs’ disks are', async () => {
    const { watchdog, seconds, heartbeat, storage } = setUp({ vms: [vm(1), vm(2, '/other')] });
    watchdog.channelOpened();
    await seconds(3, true);
    assert.equal(storage.files.size, 0, 'not configured: no heartbeat');
    const answer = watchdog.configure(settings());
    assert.deepEqual(answer.heartbeatRoots, ['/other', '/shared']);
    assert.equal(answer.hostName, 'host-a');
    await seconds(4, true);
    const first = heartbeat()!;
    assert.deepEqual(
      { ...first, bootId: undefined, writtenAt: undefined },
      {
        format: 1,
        host: 'host-a',
        bootId: undefined,
        counter: 5,
        writtenAt: undefined,
        heartbeatMs: 1000,
        channel: 'up',
        channelDownSince: null,
        vms: [
          { uuid: 'uuid-1', running: true },
          { uuid: 'uuid-2', running: true },
        ],
        released: [],
        fencedAt: null,
      },
    );
    assert.equal(first.bootId, watchdog.bootId);
    assert.deepEqual(heartbeat('/other'), first, 'the same heartbeat in each root');
    assert.equal(heartbeat('/local'), undefined, 'no VM has a disk there');
    await seconds(3, true);
    assert.equal(heartbeat()!.counter, 8, '+1 a beat');
  });

  test('isolation: the channel down for isolationSeconds with the storage alive powers the VMs off and releases them; the channel back ends it', async () => {
    const { watchdog, clock, vms, seconds, heartbeat, logs } = setUp({});
    watchdog.channelOpened();
    watchdog.configure(settings({ isolationSeconds: 5 }));
    await seconds(2, true);
    watchdog.channelHeard();
    const lastHeard = clock.now();
    // Silence: down after three beats, isolated five seconds after it was last heard.
    await seconds(3, false);
    assert.equal(heartbeat()!.channel, 'down');
    assert.equal(heartbeat()!.channelDownSince, lastHeard);
    await seconds(1, false);
    assert.deepEqual(vms.calls, [], 'four seconds: not yet');
    await seconds(1, false);
    assert.deepEqual(vms.calls, ['power-off q1', 'power-off q2']);
    const counter = heartbeat()!.counter;
    await seconds(2, false);
    assert.deepEqual(heartbeat()!.released, ['uuid-1', 'uuid-2']);
    assert.deepEqual(heartbeat()!.vms, [
      { uuid: 'uuid-1', running: false },
      { uuid: 'uuid-2', running: false },
    ]);
    assert.ok(heartbeat()!.counter >= counter + 2, 'the heartbeat goes on');
    assert.equal(heartbeat()!.fencedAt, null, 'isolated, not fenced');
    // Nothing is killed later: the storage heartbeat goes on.
    await seconds(20, false);
    assert.deepEqual(vms.calls, ['power-off q1', 'power-off q2']);
    // Back: isolation ends, the released VMs stay listed until the control plane clears them.
    watchdog.channelOpened();
    await seconds(2, true);
    assert.equal(heartbeat()!.channel, 'up');
    assert.deepEqual(heartbeat()!.released, ['uuid-1', 'uuid-2']);
    assert.deepEqual(watchdog.clearReleased(['uuid-1']), ['uuid-2']);
    await seconds(1, true);
    assert.deepEqual(heartbeat()!.released, ['uuid-2']);
    const messages = logs.lines().map((line) => line.msg);
    assert.ok(messages.some((m) => /ha: isolated/.test(String(m))));
    assert.ok(messages.some((m) => /released/.test(String(m))));
    assert.ok(messages.some((m) => /isolation ends/.test(String(m))));
  });

  test('the control plane down while its host answers on the network (refused): no isolation, no VM touched; its host silent too: isolated', async () => {
    const network = { answering: true, asked: 0 };
    const probe = {
      answers: async () => {
        network.asked++;
        return network.answering;
      },
    };
    const { watchdog, clock, vms, seconds, logs } = setUp({ network: probe });
    watchdog.channelOpened();
    watchdog.configure(settings({ isolationSeconds: 5 }));
    await seconds(2, true);
    assert.equal(network.asked, 0, 'asked only while the channel is down');
    watchdog.channelHeard();
    await seconds(30, false);
    assert.ok(network.asked > 0);
    assert.deepEqual(vms.calls, [], 'a control plane restart powers nothing off');
    assert.equal(watchdog.status().isolated, false);
    assert.equal(watchdog.status().channel, 'down');
    assert.ok(
      logs.lines().some((line) => /its host answers on the network/.test(String(line.msg))),
    );
    // The network goes silent as well: isolated, within the isolation time and a few beats.
    network.answering = false;
    const silentFrom = clock.now();
    await seconds(5, false);
    assert.deepEqual(vms.calls, ['power-off q1', 'power-off q2']);
    assert.equal(watchdog.status().isolated, true);
    assert.ok(clock.now() - silentFrom <= 5000);
  });

  test('the isolation address: a listening port and a refused one answer; an address nothing answers from is silence', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      assert.equal(await isolationAddress(`http://127.0.0.1:${port}`).answers(), true);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    assert.equal(await isolationAddress(`http://127.0.0.1:${port}`).answers(), true, 'refused');
    // Silence, made here: a listener that never accepts, its queue (backlog 1) full — the kernel
    // drops further connection requests, as a cut network loses them.
    const mute = spawn(
      process.execPath,
      [
        '-e',
        `const s = require('node:net').createServer();
         s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
           console.log(s.address().port);
           setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000), 20);
         });`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const fillers: Socket[] = [];
    try {
      const mutePort = await new Promise<number>((resolve) =>
        mute.stdout.once('data', (data) => resolve(Number(String(data)))),
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (let i = 0; i < 2; i++)
        await new Promise((resolve) => {
          const filler = connect({ host: '127.0.0.1', port: mutePort }, () => resolve(null));
          fillers.push(filler);
        });
      assert.equal(await isolationAddress(`http://127.0.0.1:${mutePort}`).answers(), false);
    } finally {
      for (const filler of fillers) filler.destroy();
      mute.kill('SIGKILL');
    }
  });

  test('isolation response shutdown asks the guest with the bounded wait; leave-running touches nothing', async () => {
    const shut = setUp({ vms: [vm(1)] });
    shut.watchdog.channelOpened();
    shut.watchdog.configure(settings({ isolationResponse: 'shutdown', shutdownSeconds: 7 }));
    await shut.seconds(8, false);
    assert.deepEqual(shut.vms.calls, ['shutdown q1 7000']);
    assert.deepEqual(shut.heartbeat()!.released, ['uuid-1']);

    const stay = setUp({});
    stay.watchdog.channelOpened();
    stay.watchdog.configure(settings({ isolationResponse: 'leave-running' }));
    await stay.seconds(30, false);
    assert.deepEqual(stay.vms.calls, []);
    assert.equal(stay.heartbeat()!.channel, 'down');
    assert.deepEqual(stay.heartbeat()!.released, []);
    assert.equal(stay.watchdog.status().isolated, true);
  });

  test('a VM’s own isolation response overrides the host’s, both ways', async () => {
    const { watchdog, vms, seconds, heartbeat } = setUp({ vms: [vm(1), vm(2), vm(3)] });
    watchdog.channelOpened();
    watchdog.configure(
      settings({
        isolationResponse: 'power-off',
        vmIsolationResponses: { 'uuid-2': 'leave-running', 'uuid-3': 'shutdown' },
      }),
    );
    await seconds(8, false);
    assert.deepEqual([...vms.calls].sort(), ['power-off q1', 'shutdown q3 30000']);
    assert.deepEqual([...heartbeat()!.released].sort(), ['uuid-1', 'uuid-3']);

    const stay = setUp({ vms: [vm(1), vm(2)] });
    stay.watchdog.channelOpened();
    stay.watchdog.configure(
      settings({
        isolationResponse: 'leave-running',
        vmIsolationResponses: { 'uuid-2': 'power-off' },
      }),
    );
    await stay.seconds(8, false);
    assert.deepEqual(stay.vms.calls, ['power-off q2']);
    assert.deepEqual(stay.heartbeat()!.released, ['uuid-2']);
  });

  test('self-fencing: every QEMU is killed selfFenceSeconds after both the channel and the storage are lost, and only then', async () => {
    const { watchdog, clock, vms, storage, seconds, heartbeat, logs } = setUp({});
    watchdog.channelOpened();
    watchdog.configure(settings({ isolationResponse: 'leave-running', selfFenceSeconds: 10 }));
    await seconds(2, true);
    // The storage alone is lost: the channel is up, nothing happens.
    storage.broken = true;
    await seconds(20, true);
    assert.deepEqual(vms.calls, []);
    // The channel too: the storage has been lost long enough, the channel not yet.
    watchdog.channelHeard();
    const lastHeard = clock.now();
    await seconds(9, false);
    assert.deepEqual(vms.calls, [], 'nine seconds after the channel was last heard');
    await seconds(1, false);
    assert.deepEqual(vms.calls, ['kill 1001', 'kill 1002'], 'both at once');
    assert.equal(watchdog.status().fencedAt, lastHeard + 10_000);
    assert.equal(heartbeat()!.fencedAt, null, 'not written while the storage is gone');
    // The storage comes back: the heartbeat says the host fenced itself and its VMs are released.
    storage.broken = false;
    await seconds(2, false);
    assert.equal(heartbeat()!.fencedAt, lastHeard + 10_000);
    assert.deepEqual(heartbeat()!.released, ['uuid-1', 'uuid-2']);
    assert.ok(logs.lines().some((line) => /self-fencing killed a VM/.test(String(line.msg))));
  });

  test('self-fencing counts from the later of the two losses; with the storage alive there is none', async () => {
    const late = setUp({});
    late.watchdog.channelOpened();
    late.watchdog.configure(settings({ isolationResponse: 'leave-running', selfFenceSeconds: 10 }));
    await late.seconds(2, true);
    // The channel goes first, the storage six seconds later: killed ten seconds after that.
    await late.seconds(6, false);
    late.storage.broken = true;
    const brokenAt = late.clock.now();
    await late.seconds(9, false);
    assert.deepEqual(late.vms.calls, []);
    await late.seconds(2, false);
    assert.deepEqual(late.vms.calls, ['kill 1001', 'kill 1002']);
    assert.ok(late.watchdog.status().fencedAt! - brokenAt <= 11_000);

    const alive = setUp({});
    alive.watchdog.channelOpened();
    alive.watchdog.configure(settings({ isolationResponse: 'leave-running' }));
    await alive.seconds(60, false);
    assert.deepEqual(alive.vms.calls, []);
    assert.equal(alive.watchdog.status().fencedAt, null);
  });

  test('a restarted agent watches with its kept settings, and kills its VMs at once when its last heartbeat is older than selfFenceSeconds', async () => {
    const storage = new FakeStorage();
    const kept: HaPersistedState = {
      settings: settings({ isolationResponse: 'leave-running' }),
      released: ['uuid-9'],
      fencedAt: null,
    };
    // Away 2 seconds: the channel comes back, nothing is killed, the counter goes on.
    const quick = setUp({ storage, kept });
    await storage.write('/shared', {
      format: 1,
      host: 'host-a',
      bootId: 'before',
      counter: 41,
      writtenAt: quick.clock.now() - 2000,
      heartbeatMs: 1000,
      channel: 'up',
      channelDownSince: null,
      vms: [],
      released: [],
      fencedAt: null,
    });
    quick.watchdog.start();
    quick.watchdog.channelOpened();
    await quick.seconds(15, true);
    assert.deepEqual(quick.vms.calls, []);
    assert.ok(quick.heartbeat()!.counter > 41, 'the counter goes on from the last heartbeat');
    assert.notEqual(quick.heartbeat()!.bootId, 'before');
    assert.deepEqual(quick.heartbeat()!.released, ['uuid-9'], 'released VMs are kept too');
    await quick.watchdog.stop();

    // Away 30 seconds with no channel yet: the control plane may have restarted the VMs already.
    const late = setUp({ storage, kept });
    const last = storage.files.get('/shared/host-a')!;
    storage.files.set('/shared/host-a', { ...last, writtenAt: late.clock.now() - 30_000 });
    late.watchdog.start();
    await late.seconds(1, false);
    assert.deepEqual(late.vms.calls, ['kill 1001', 'kill 1002']);
    await late.watchdog.stop();
  });
  test('feeds its fencing sentinel every beat: the running QEMUs, due a heartbeat less a guard after selfFenceSeconds past the last contact — after its own self-fencing', async () => {
    let sentinel!: FakeSentinel;
    const { watchdog, clock, vms, storage, seconds } = setUp({
      sentinel: (c) => (sentinel = new FakeSentinel(c)),
    });
    watchdog.channelOpened();
    watchdog.configure(settings({ isolationResponse: 'leave-running', selfFenceSeconds: 10 }));
    await seconds(3, true);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sentinel.feeds.at(-1)!.pids, [1001, 1002]);
    // The last heartbeat was written now: the control plane restarts nothing before now + 11 s.
    assert.equal(sentinel.deadline, clock.now() + 10_000 + 1000 - sentinelGuardMs);
    // Cut off from both: the deadline stays where the last contact put it, however often fed.
    storage.broken = true;
    const deadline = sentinel.deadline;
    const fed = sentinel.feeds.length;
    await seconds(5, false);
    assert.ok(sentinel.feeds.length > fed);
    assert.ok(sentinel.feeds.slice(fed).every((f) => f.at + f.killAfterMs <= deadline));
    // While the agent lives, it fences first.
    while (vms.calls.length === 0) await seconds(1, false);
    assert.ok(
      clock.now() < deadline,
      `fenced itself at ${clock.now()}, the sentinel at ${deadline}`,
    );
    await seconds(1, false);
    assert.deepEqual(sentinel.feeds.at(-1)!.pids, [], 'nothing left to guard');
    assert.equal(sentinel.standDowns, 0);
    await watchdog.stop();
    assert.equal(sentinel.standDowns, 1, 'a deliberate stop stands it down');
  });

  test('with short beats the sentinel is due midway between self-fencing and the control plane’s restart, not a poll after the former', async () => {
    let sentinel!: FakeSentinel;
    const { watchdog, clock, seconds } = setUp({
      sentinel: (c) => (sentinel = new FakeSentinel(c)),
    });
    watchdog.channelOpened();
    watchdog.configure(
      settings({ isolationResponse: 'leave-running', selfFenceSeconds: 3, heartbeatMs: 500 }),
    );
    await seconds(2, true);
    await new Promise((resolve) => setImmediate(resolve));
    // Self-fencing at +3 s, the control plane's restart at +3.5 s: the sentinel at +3.25 s.
    assert.equal(sentinelGuardFor(500), 250);
    assert.equal(sentinel.deadline, clock.now() + 3000 + 250);
    await watchdog.stop();
  });

  test('a deliberate stop with HA on and VMs running leaves the fencing sentinel armed (the control plane cannot tell it from a death)', async () => {
    let sentinel!: FakeSentinel;
    const { watchdog, seconds } = setUp({
      sentinel: (c) => (sentinel = new FakeSentinel(c)),
    });
    watchdog.channelOpened();
    watchdog.configure(settings({ selfFenceSeconds: 10 }));
    await seconds(3, true);
    await new Promise((resolve) => setImmediate(resolve));
    const armed = sentinel.deadline;
    await watchdog.stop();
    assert.equal(sentinel.standDowns, 0, 'still armed');
    assert.equal(sentinel.deadline, armed, 'the deadline the last feed set');
  });

  test('the fencing sentinel stands down when HA is off; what it killed while the agent was away is released in the heartbeat', async () => {
    let sentinel!: FakeSentinel;
    const off = setUp({ sentinel: (c) => (sentinel = new FakeSentinel(c)) });
    off.watchdog.start();
    assert.equal(sentinel.standDowns, 1, 'not configured: stands down at once');
    off.watchdog.configure(settings());
    off.watchdog.channelOpened();
    await off.seconds(2, true);
    off.watchdog.configure(settings({ enabled: false }));
    await off.seconds(1, true);
    assert.equal(sentinel.standDowns, 2, 'HA turned off');

    const back = setUp({
      kept: { settings: settings(), released: [], fencedAt: null },
      vms: [
        { ...vm(1), pid: null },
        { ...vm(2), pid: null },
      ],
      sentinel: (c) => {
        sentinel = new FakeSentinel(c);
        sentinel.fencing = {
          fencedAt: 5000,
          vms: [
            { name: 'vm-1', uuid: 'uuid-1', pid: 1001, release: true },
            { name: 'vm-2', uuid: 'uuid-2', pid: 1002, release: false },
          ],
        };
        return sentinel;
      },
    });
    back.watchdog.start();
    assert.deepEqual(back.watchdog.status().released, ['uuid-1'], 'not half of a migration');
    assert.equal(back.watchdog.status().fencedAt, 5000);
    assert.deepEqual(back.kept()!.released, ['uuid-1'], 'kept across restarts');
    back.watchdog.channelOpened();
    await back.seconds(2, true);
    assert.deepEqual(back.heartbeat()!.released, ['uuid-1']);
    assert.equal(back.heartbeat()!.fencedAt, 5000);
    await back.watchdog.stop();
  });
});
