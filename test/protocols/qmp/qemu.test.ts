import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ZenithError } from '../../../src/core/errors.js';
import { connectQmp, type QmpClient } from '../../../src/protocols/qmp/index.js';
import { startTestQemu, type TestQemu } from '../../../src/testing/qemu.js';

// One real QEMU (TCG, empty machine) shared by the tests of this file.
let dir: string;
let qemu: TestQemu;
let client: QmpClient;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zenith-qmp-'));
  qemu = await startTestQemu({ qmpSocket: join(dir, 'qmp.sock'), guest: false });
  client = await connectQmp(join(dir, 'qmp.sock'));
});

after(async () => {
  await client?.close();
  await qemu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<ZenithError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ZenithError, `expected a ZenithError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

test('negotiates with QEMU: ready, QEMU 7 or newer, oob enabled', () => {
  assert.equal(client.state, 'ready');
  assert.ok(client.greeting.version.qemu.major >= 7, JSON.stringify(client.greeting.version));
  assert.deepEqual(client.capabilities, ['oob']);
});

test('query-status says the machine is running; query-version matches the greeting', async () => {
  assert.deepEqual(
    {
      running: (await client.execute('query-status')).running,
      status: (await client.execute('query-status')).status,
    },
    { running: true, status: 'running' },
  );
  const version = await client.execute('query-version');
  assert.deepEqual(version.qemu, client.greeting.version.qemu);
});

test('stop and cont pause and resume the machine, with STOP and RESUME events', async () => {
  const stopped = client.waitForEvent('STOP', { timeoutMs: 5_000 });
  assert.deepEqual(await client.execute('stop'), {});
  const stopEvent = await stopped;
  assert.ok(stopEvent.timestamp.seconds > 1_700_000_000, 'events carry QEMU host time');
  assert.deepEqual(await client.execute('query-status'), {
    running: false,
    singlestep: false,
    status: 'paused',
  });

  const resumed = client.waitForEvent('RESUME', { timeoutMs: 5_000 });
  await client.execute('cont');
  await resumed;
  assert.equal((await client.execute('query-status')).status, 'running');
});

test('an unknown command is QMP_COMMAND_FAILED with class CommandNotFound; the connection stays usable', async () => {
  const error = await rejectsWith(client.executeRaw('no-such-command'), 'QMP_COMMAND_FAILED');
  assert.equal(error.details.class, 'CommandNotFound');
  assert.equal(error.details.command, 'no-such-command');
  const badArgument = await rejectsWith(
    client.execute('human-monitor-command', { 'command-line': 'info status', 'cpu-index': 99 }),
    'QMP_COMMAND_FAILED',
  );
  assert.equal(badArgument.details.class, 'GenericError');
  assert.equal(client.state, 'ready');
});

test('typed queries a driver needs answer with QEMU data', async () => {
  const cpus = await client.execute('query-cpus-fast');
  assert.equal(cpus.length, 1);
  assert.equal(cpus[0]?.target, 'x86_64');
  assert.ok((cpus[0]?.['thread-id'] ?? 0) > 0);
  assert.deepEqual(await client.execute('query-block'), [], '-nodefaults gives no drives');
  assert.deepEqual(await client.execute('query-blockstats'), []);
  assert.deepEqual(await client.execute('query-block-jobs'), []);
  assert.deepEqual(await client.execute('query-migrate'), {}, 'no migration has run');
  const hmp = await client.execute('human-monitor-command', { 'command-line': 'info status' });
  assert.match(hmp, /VM status: running/);
  const blockJobError = await rejectsWith(
    client.execute('block-job-cancel', { device: 'none' }),
    'QMP_COMMAND_FAILED',
  );
  assert.equal(blockJobError.details.class, 'DeviceNotActive');
});

test('a hundred commands in flight at once all get their own answers', async () => {
  const answers = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      i % 2 === 0
        ? client.execute('query-status')
        : client.execute('human-monitor-command', { 'command-line': `print /d ${i}` }),
    ),
  );
  answers.forEach((answer, i) => {
    if (i % 2 === 0) assert.equal((answer as { status: string }).status, 'running');
    else assert.equal(answer, `${i}\r\n`);
  });
});

test('sequential query-status round trip (n=1000)', async (t) => {
  const started = process.hrtime.bigint();
  for (let i = 0; i < 1000; i++) await client.execute('query-status');
  const perCallUs = Number(process.hrtime.bigint() - started) / 1000 / 1000;
  t.diagnostic(`query-status round trip: ${perCallUs.toFixed(1)} µs per call (sequential, n=1000)`);
  assert.ok(
    perCallUs < 5_000,
    `a local round trip should take well under 5 ms, took ${perCallUs} µs`,
  );
});

test('a second client on the same socket gets no greeting and fails with QMP_CONNECT_FAILED', async () => {
  const error = await rejectsWith(
    connectQmp(join(dir, 'qmp.sock'), { handshakeTimeoutMs: 300 }),
    'QMP_CONNECT_FAILED',
  );
  assert.equal(error.details.reason, 'handshake-timeout');
  assert.equal(
    (await client.execute('query-status')).status,
    'running',
    'the first client is unaffected',
  );
});

test('a missing socket fails with QMP_CONNECT_FAILED naming the path', async () => {
  const error = await rejectsWith(connectQmp(join(dir, 'absent.sock')), 'QMP_CONNECT_FAILED');
  assert.equal(error.details.reason, 'ENOENT');
  assert.equal(error.details.path, join(dir, 'absent.sock'));
});

test('killing QEMU rejects every pending call with QMP_CLOSED', async () => {
  const victim = await startTestQemu({ qmpSocket: join(dir, 'victim.sock'), guest: false });
  try {
    const victimClient = await connectQmp(join(dir, 'victim.sock'));
    // Frozen, QEMU cannot answer: the calls are surely pending when it dies.
    victim.process.kill('SIGSTOP');
    const pending = [victimClient.execute('query-status'), victimClient.execute('query-migrate')];
    victim.process.kill('SIGKILL');
    for (const call of pending) await rejectsWith(call, 'QMP_CLOSED');
    await victimClient.closed;
    assert.equal(victimClient.state, 'closed');
    await rejectsWith(victimClient.execute('query-status'), 'QMP_CLOSED');
  } finally {
    await victim.stop();
  }
});

test('quit answers, then QEMU exits and the client closes', async () => {
  const leaving = await startTestQemu({ qmpSocket: join(dir, 'quit.sock'), guest: false });
  try {
    const leavingClient = await connectQmp(join(dir, 'quit.sock'));
    assert.deepEqual(await leavingClient.execute('quit'), {});
    await leavingClient.closed;
    assert.equal(leavingClient.closeReason?.code, 'QMP_CLOSED');
    assert.equal(await leaving.waitForExit(), 0);
  } finally {
    await leaving.stop();
  }
});

test('out-of-band execution reaches QEMU as exec-oob; QEMU refuses it for in-band-only commands', async () => {
  // migrate-pause is one of the few out-of-band commands; with no postcopy running QEMU refuses the
  // pause itself, which proves the exec-oob request was accepted and dispatched.
  const pause = await rejectsWith(
    client.executeRaw('migrate-pause', undefined, { oob: true }),
    'QMP_COMMAND_FAILED',
  );
  assert.equal(pause.details.class, 'GenericError');
  assert.doesNotMatch(String(pause.details.desc), /does not support OOB/);
  const inBandOnly = await rejectsWith(
    client.execute('query-status', undefined, { oob: true }),
    'QMP_COMMAND_FAILED',
  );
  assert.match(String(inBandOnly.details.desc), /OOB/);
  assert.equal(client.state, 'ready');
});

test('after a client leaves, a new client re-attaches to the same running QEMU', async () => {
  await client.execute('stop');
  await client.close();
  // As an agent does after a restart: the VM kept its state while nobody was attached.
  client = await connectQmp(join(dir, 'qmp.sock'));
  assert.equal(client.state, 'ready');
  assert.equal((await client.execute('query-status')).status, 'paused');
  await client.execute('cont');
  assert.equal((await client.execute('query-status')).status, 'running');
});
