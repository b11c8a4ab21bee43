/**
 * The agent's side of high availability with real agents, each in its own network and PID
 * namespace on a lab bridge, sharing a storage directory, and real TCG guests. Configured through
 * the channel (configureHa), an agent writes its heartbeat where its VM's disk is and a peer reads
 * it for the control plane (readHaHeartbeats); its network cut, it powers its VM off as its
 * isolation response and says so in the heartbeat it keeps writing; with its storage unwritable
 * as well, an agent kills its VM's QEMU itself once selfFenceSeconds have passed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isZenithError } from '../../src/core/errors.js';
import type { AgentLink } from '../../src/protocols/agent-channel/agent-link.js';
import {
  heartbeatDirName,
  heartbeatPath,
  readHeartbeatFile,
} from '../../src/protocols/ha-heartbeat.js';
import {
  ok,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import {
  startPhysicalLab,
  type PhysicalHost,
  type PhysicalLab,
} from '../../src/testing/physical-hosts.js';
import { until } from '../../src/testing/wait.js';

const isolationSeconds = 2;
const selfFenceSeconds = 3;
const heartbeatMs = 500;

/** A host's agent, started as its machine (its output kept for failures). */
class Machine {
  readonly child: ChildProcess;
  #output = '';
  constructor(readonly host: PhysicalHost) {
    const [command, ...args] = host.machineCommand as [string, ...string[]];
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (data: Buffer) => (this.#output = (this.#output + data.toString()).slice(-20_000));
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
  }
  output(): string {
    return this.#output.slice(-4000);
  }
}

describe('HA on the agent: storage heartbeat, isolation response, self-fencing', () => {
  let lab: PhysicalLab;
  let s: TestServer;
  let admin: string;
  let image: { kernel: string; initrd: string };
  const base = mkdtempSync(join(tmpdir(), 'zenith-ha-agent-'));
  const shared = join(base, 'shared');
  const machines: Record<string, Machine> = {};
  const vms: Record<string, ApiAnswer> = {};

  const agentId = async (name: string) =>
    (ok(await s.request('GET', '/agents', { token: admin })).items as ApiAnswer[]).find(
      (a) => a.hostname === name,
    )?.id as string | undefined;
  const linkOf = async (name: string): Promise<AgentLink> =>
    until(`the channel of ${name}`, async () => {
      const id = await agentId(name);
      const link = id ? s.plane.agentHub.link(id) : undefined;
      return link?.connected ? link : undefined;
    });
  const heartbeatOf = (name: string) => readHeartbeatFile(heartbeatPath(shared, name));
  const runTask = async (method: string, path: string, body?: unknown) => {
    const answer = ok(
      await s.request(method, path, { token: admin, ...(body ? { body } : {}) }),
      202,
    );
    const done = await s.waitForTask(admin, answer.id as string, 120_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    return done;
  };
  /** The VM's QEMU as this test sees it (the agent reports ids of its own PID namespace). */
  const qemuOf = async (host: string, uuid: string) =>
    (await lab.processes(machines[host]!.host)).find(
      (p) => p.command.includes('qemu-system') && p.command.includes(uuid),
    );
  const configure = (link: AgentLink, isolationResponse: 'power-off' | 'leave-running') =>
    link.call('configureHa', [
      { enabled: true, isolationResponse, isolationSeconds, selfFenceSeconds, heartbeatMs },
    ]);

  before(async () => {
    image = await ensureGuestImage();
    mkdirSync(shared, { recursive: true });
    lab = await startPhysicalLab();
    s = await startTestServer({ listenHost: lab.gateway });
    admin = await s.login();
    for (const name of ['ha-a', 'ha-b']) {
      const host = await lab.addHost({
        name,
        serverUrl: s.baseUrl,
        enrollmentToken: ok(
          await s.request('POST', '/agents/enrollment-tokens', { token: admin, body: {} }),
          201,
        ).token as string,
        storageRoots: [shared, dirname(image.kernel)],
        baseDir: base,
      });
      machines[name] = new Machine(host);
    }
    for (const name of ['ha-a', 'ha-b']) {
      await until(
        () => `${name} connected\n${machines[name]!.output()}`,
        async () => ((await agentId(name)) ? true : undefined),
      );
      await linkOf(name);
      // A running guest with its disk on the shared storage.
      await until(`host ${name} in the inventory`, async () =>
        (await s.request('GET', `/hosts/${name}`, { token: admin })).status === 200
          ? true
          : undefined,
      );
      const created = await runTask('POST', '/vms', {
        name: `guest-${name}`,
        hostId: name,
        cpus: 1,
        memoryBytes: 96 * 2 ** 20,
        diskBytes: 16 * 2 ** 20,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      });
      await runTask('POST', `/vms/${created.result.vmId}/start`);
      vms[name] = ok(await s.request('GET', `/vms/${created.result.vmId}`, { token: admin }));
    }
  });
  after(async () => {
    try {
      for (const machine of Object.values(machines)) {
        // Network first: the control plane's end of the channel then hears the agent go.
        await lab?.restoreNetwork(machine.host);
        await lab?.crash(machine.host);
        machine.child.kill('SIGKILL');
      }
      await s?.close();
    } finally {
      await lab?.close();
      rmSync(base, { recursive: true, force: true });
    }
  });

  test('configured through the channel, an agent writes its heartbeat where its VM’s disk is, and a peer reads it', async () => {
    const a = await linkOf('ha-a');
    const answer = await configure(a, 'power-off');
    assert.deepEqual(answer.heartbeatRoots, [shared], 'only the root holding its disk');
    assert.equal(answer.hostName, 'ha-a', 'named as its host is in the inventory');
    const first = await until('the first heartbeat', () =>
      heartbeatOf('ha-a').then((h) => h ?? undefined),
    );
    const later = await until('the counter to advance', async () => {
      const now = await heartbeatOf('ha-a');
      return now && now.counter >= first.counter + 2 ? now : undefined;
    });
    assert.equal(later.bootId, answer.bootId);
    assert.equal(later.channel, 'up');
    assert.deepEqual(later.vms, [{ uuid: vms['ha-a']!.facts['vm.uuid'], running: true }]);
    assert.deepEqual(later.released, []);

    // The control plane reads a host's heartbeat through another agent sharing the storage.
    const b = await linkOf('ha-b');
    const read = await b.call('readHaHeartbeats', [shared]);
    assert.deepEqual(
      read.map((h) => h.host),
      ['ha-a'],
    );
    assert.ok(read[0]!.counter >= later.counter);
    await assert.rejects(
      b.call('readHaHeartbeats', [base]),
      (error) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
    );
  });

  test('its network cut, the agent powers its VM off after isolationSeconds and lists it as released while its heartbeat goes on', async () => {
    const uuid = vms['ha-a']!.facts['vm.uuid'] as string;
    assert.ok(await qemuOf('ha-a', uuid), 'the guest runs');
    const cutAt = Date.now();
    await lab.cutNetwork(machines['ha-a']!.host);
    const released = await until(
      () => `the VM released\n${machines['ha-a']!.output()}`,
      async () => {
        const heartbeat = await heartbeatOf('ha-a');
        return heartbeat?.released.includes(uuid) ? heartbeat : undefined;
      },
      20_000,
    );
    const tookMs = Date.now() - cutAt;
    assert.equal(await qemuOf('ha-a', uuid), undefined, 'its QEMU is gone');
    // Silence of three heartbeats, isolationSeconds, the power-off: a few seconds in all.
    assert.ok(tookMs >= isolationSeconds * 1000, `released after ${tookMs} ms`);
    assert.ok(tookMs <= (isolationSeconds + 5) * 1000, `released after ${tookMs} ms`);
    assert.equal(released.channel, 'down');
    assert.ok(released.channelDownSince! <= cutAt + heartbeatMs);
    assert.deepEqual(released.vms, [{ uuid, running: false }]);
    assert.equal(released.fencedAt, null, 'isolated, not fenced');
    await until('the heartbeat to go on', async () => {
      const now = await heartbeatOf('ha-a');
      return now && now.counter >= released.counter + 2 ? true : undefined;
    });
  });

  test('its storage unwritable and its network cut, the agent kills its VM’s QEMU after selfFenceSeconds, and says so once the storage is back', async () => {
    const b = await linkOf('ha-b');
    await configure(b, 'leave-running');
    const uuid = vms['ha-b']!.facts['vm.uuid'] as string;
    await until('ha-b heartbeat', async () =>
      (await heartbeatOf('ha-b'))?.channel === 'up' ? true : undefined,
    );
    const qemu = (await qemuOf('ha-b', uuid))!;
    assert.ok(qemu, 'the guest runs');
    // The heartbeat directory becomes a file: no heartbeat can be written any more.
    const dir = join(shared, heartbeatDirName);
    const saved = join(base, 'saved-heartbeats');
    await until('the heartbeat directory replaced by a file', async () => {
      try {
        renameSync(dir, saved);
      } catch {
        // An agent made it again between the two steps: try again.
      }
      try {
        writeFileSync(dir, 'not a directory', { flag: 'wx' });
        return true;
      } catch {
        return undefined;
      }
    });
    await lab.cutNetwork(machines['ha-b']!.host);
    const cutAt = Date.now();
    // Not before selfFenceSeconds: the leave-running response does not stop it either.
    await new Promise((resolve) => setTimeout(resolve, (selfFenceSeconds - 1) * 1000));
    assert.ok(await qemuOf('ha-b', uuid), 'still running before selfFenceSeconds');
    await until(
      () => `the QEMU killed\n${machines['ha-b']!.output()}`,
      async () => ((await qemuOf('ha-b', uuid)) ? undefined : true),
      15_000,
    );
    const tookMs = Date.now() - cutAt;
    assert.ok(tookMs <= (selfFenceSeconds + 5) * 1000, `killed after ${tookMs} ms`);
    // The storage back: the heartbeat says the host fenced itself, and the VM is released.
    rmSync(dir, { force: true });
    const fenced = await until('the fenced heartbeat', async () => {
      const heartbeat = await heartbeatOf('ha-b').catch(() => null);
      return heartbeat?.fencedAt ? heartbeat : undefined;
    });
    assert.deepEqual(fenced.released, [uuid]);
    assert.deepEqual(fenced.vms, [{ uuid, running: false }]);
    assert.equal(fenced.channel, 'down');
    const log = machines['ha-b']!.output();
    // The agent kills it; if the agent itself was held up past the deadline (a loaded machine),
    // its fencing sentinel does, and the agent says so when it looks again.
    assert.match(
      log,
      /self-fencing killed a VM|the fencing sentinel killed a VM while the agent was away/,
    );
    assert.ok(fenced.fencedAt! - fenced.channelDownSince! >= selfFenceSeconds * 1000);
  });
});
