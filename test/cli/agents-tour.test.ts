import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { killAgents, spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import { adminPassword } from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import {
  cliRunner,
  startServerProcess,
  type ServerProcess,
} from '../../src/testing/server-process.js';
import { until } from '../../src/testing/wait.js';

describe('two host agents through the zenith command: enroll, create, migrate with storage and back, revoke', () => {
  let server: ServerProcess;
  let zenith: ReturnType<typeof cliRunner>;
  const dataDir = mkdtempSync(join(tmpdir(), 'zenith-cli-agents-'));
  const agentDirs = [
    mkdtempSync(join(tmpdir(), 'zenith-cli-agent-a-')),
    mkdtempSync(join(tmpdir(), 'zenith-cli-agent-b-')),
  ];
  const agents: AgentProcess[] = [];
  let image: { kernel: string; initrd: string };

  before(async () => {
    image = await ensureGuestImage();
    server = await startServerProcess({ dataDir });
    zenith = cliRunner(server.url);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
  });
  after(async () => {
    await zenith(['vms', 'stop', 'cli-walker']).catch(() => undefined);
    try {
      await killAgents(agents);
    } finally {
      spawnSync('pkill', ['-9', '-f', 'guest=cli-walker']);
      await server.kill();
      for (const dir of [dataDir, ...agentDirs]) rmSync(dir, { recursive: true, force: true });
    }
  });

  const json = async (args: string[]) => {
    const result = await zenith(['--json', ...args]);
    assert.equal(result.code, 0, `zenith ${args.join(' ')}: ${result.stderr}`);
    return JSON.parse(result.stdout);
  };

  test('agents enroll prints a one-time token; two agents started with them appear connected', async () => {
    const human = await zenith(['agents', 'enroll']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /zenith agent --server .* --token 'enr_/);
    for (const [i, name] of ['cli-a', 'cli-b'].entries()) {
      const { token } = await json(['agents', 'enroll', '--ttl', '10']);
      agents.push(
        spawnAgent({
          serverUrl: server.url,
          stateDir: agentDirs[i]!,
          storageRoots: [join(agentDirs[i]!, 'storage'), dirname(image.kernel)],
          hostName: name,
          extra: ['--token', token],
        }),
      );
    }
    const listed = await until(
      () =>
        `both agents connected${agents.map((a) => `\nagent output:\n${a.output().slice(-2000)}`).join('')}`,
      async () => {
        const page = await json(['agents', 'list']);
        const connected = (page.items as Array<{ hostname: string; state: string }>).filter(
          (a) => a.state === 'connected',
        );
        return connected.length === 2 ? page : undefined;
      },
    );
    assert.deepEqual((listed.items as Array<{ hostname: string }>).map((a) => a.hostname).sort(), [
      'cli-a',
      'cli-b',
    ]);
    const table = await zenith(['agents', 'list']);
    assert.match(table.stdout, /cli-a\s+│\s+connected/);
  });

  test('a VM with its own disk is created on one agent, moves to the other with its storage and back, with metrics on the way', async () => {
    const created = await zenith([
      'vms',
      'create',
      'cli-walker',
      '--host',
      'cli-a',
      '--cpus',
      '1',
      '--memory',
      '128MiB',
      '--disk',
      '32MiB',
      '--kernel',
      image.kernel,
      '--initrd',
      image.initrd,
      '--cmdline',
      GUEST_KERNEL_APPEND,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const started = await zenith(['vms', 'start', 'cli-walker']);
    assert.equal(started.code, 0, started.stderr);

    const there = await zenith(['vms', 'migrate', 'cli-walker', 'cli-b', '--with-storage']);
    assert.equal(there.code, 0, there.stderr);
    assert.equal((await json(['vms', 'location', 'cli-walker'])).hostName, 'cli-b');

    const metrics = await until('metrics from cli-b', async () => {
      const result = await zenith(['vms', 'metrics', 'cli-walker']);
      return /cpu time\s+\d/.test(result.stdout) ? result.stdout : undefined;
    });
    assert.match(metrics, /memory\s+.* used of 128/);

    const back = await zenith([
      'vms',
      'migrate',
      'cli-walker',
      'cli-a',
      '--with-storage',
      '--max-downtime',
      '500',
      '--multifd',
      '2',
    ]);
    assert.equal(back.code, 0, back.stderr);
    const history = await json(['vms', 'history', 'cli-walker']);
    assert.deepEqual(
      (history.items as Array<{ hostName: string; powerState: string }>)
        .filter((i) => i.powerState === 'running')
        .map((i) => i.hostName)
        .slice(0, 3),
      ['cli-a', 'cli-b', 'cli-a'],
    );
    const vm = await json(['vms', 'show', 'cli-walker']);
    assert.equal(vm.facts['power.state'], 'running');
  });

  test('agents revoke cuts an agent off; its host shows disconnected', async () => {
    const page = await json(['agents', 'list']);
    const b = (page.items as Array<{ id: string; hostname: string }>).find(
      (a) => a.hostname === 'cli-b',
    )!;
    const revoked = await zenith(['agents', 'revoke', b.id]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /cli-b .* is revoked/);
    await until('the revoked agent to be cut off', async () => {
      const connections = (await json(['connections', 'list'])).items as Array<{
        name: string;
        state: string;
      }>;
      return connections.some((c) => c.name.includes('cli-b') && c.state !== 'connected')
        ? true
        : undefined;
    });
  });
});
