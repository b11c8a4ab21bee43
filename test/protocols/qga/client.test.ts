import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { ZenithError } from '../../../src/core/errors.js';
import { QgaClient } from '../../../src/protocols/qga/index.js';

/**
 * The guest's end of the channel, scripted: silence, stale answers and late answers, which a real
 * qemu-ga shows only by accident. The real agent is exercised in test/services/backup-quiesce.test.ts.
 */
class ScriptedAgent {
  readonly hostSide: Duplex;
  readonly received: Array<{ execute: string; arguments?: { id?: number } }> = [];
  #waiters: Array<() => void> = [];
  #partial = '';

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const agent = this;
    this.hostSide = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        // The 0xFF before a sync resets the agent's parser: it is not part of any command.
        agent.#partial += chunk.toString('latin1').replaceAll('\xff', '');
        let newline = agent.#partial.indexOf('\n');
        while (newline !== -1) {
          agent.received.push(JSON.parse(agent.#partial.slice(0, newline)));
          agent.#partial = agent.#partial.slice(newline + 1);
          newline = agent.#partial.indexOf('\n');
        }
        for (const wake of agent.#waiters.splice(0)) wake();
        callback();
      },
    });
  }

  send(bytes: string | Buffer): void {
    this.hostSide.push(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes);
  }

  async command(count: number) {
    while (this.received.length < count)
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return this.received[count - 1]!;
  }

  /** Answers the sync that is command number `count`, as qemu-ga does. */
  async answerSync(count: number, options: { staleFirst?: string } = {}): Promise<void> {
    const sync = await this.command(count);
    assert.equal(sync.execute, 'guest-sync-delimited');
    if (options.staleFirst) this.send(options.staleFirst);
    this.send(Buffer.concat([Buffer.of(0xff), Buffer.from(`{"return": ${sync.arguments?.id}}\n`)]));
  }
}

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

test('syncs before the first command, discarding stale answers, then answers commands in order', async () => {
  const agent = new ScriptedAgent();
  const client = new QgaClient(agent.hostSide, { clock: new ManualClock() });
  const freezing = client.freeze();
  await agent.answerSync(1, { staleFirst: '{"return": "thawed"}\n{"return": 9}\n' });
  assert.equal((await agent.command(2)).execute, 'guest-fsfreeze-freeze');
  agent.send('{"return": 2}\n');
  assert.equal(await freezing, 2);
  const status = client.freezeStatus();
  assert.equal((await agent.command(3)).execute, 'guest-fsfreeze-status');
  agent.send('{"return": "frozen"}\n');
  assert.equal(await status, 'frozen');
  assert.equal(agent.received.length, 3, 'synced once only');
  client.close();
});

test('an agent that does not answer times out on the clock, and no command waits past it', async () => {
  const clock = new ManualClock();
  const agent = new ScriptedAgent();
  const client = new QgaClient(agent.hostSide, { clock });
  const ping = client.ping({ timeoutMs: 1000 });
  await agent.command(1);
  await clock.advance(999);
  let settled = false;
  void ping.catch(() => (settled = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(settled, false, 'still waiting before the timeout');
  await clock.advance(1);
  const error = await rejectsWith(ping, 'QGA_TIMEOUT');
  assert.equal(error.details.command, 'guest-ping');
  client.close();
});

test('a late answer to a timed-out command is never taken for the next one', async () => {
  const clock = new ManualClock();
  const agent = new ScriptedAgent();
  const client = new QgaClient(agent.hostSide, { clock });
  const freezing = client.freeze({ timeoutMs: 500 });
  await agent.answerSync(1);
  await agent.command(2);
  const timedOut = rejectsWith(freezing, 'QGA_TIMEOUT');
  await clock.advance(500);
  await timedOut;
  // The next command syncs again; the freeze's answer arrives late, before the sync's.
  const status = client.freezeStatus();
  await agent.answerSync(3, { staleFirst: '{"return": 3}\n' });
  assert.equal((await agent.command(4)).execute, 'guest-fsfreeze-status');
  agent.send('{"return": "frozen"}\n');
  assert.equal(await status, 'frozen');
  client.close();
});

test('a refused command is QGA_COMMAND_FAILED with the class; a closed channel fails what waits', async () => {
  const agent = new ScriptedAgent();
  const client = new QgaClient(agent.hostSide, { clock: new ManualClock() });
  const thawing = client.thaw();
  await agent.answerSync(1);
  await agent.command(2);
  agent.send('{"error": {"class": "GenericError", "desc": "failed to thaw"}}\n');
  const refused = await rejectsWith(thawing, 'QGA_COMMAND_FAILED');
  assert.equal(refused.details.errorClass, 'GenericError');
  assert.equal(refused.details.command, 'guest-fsfreeze-thaw');
  const ping = client.ping();
  await agent.command(3);
  agent.hostSide.push(null);
  await rejectsWith(ping, 'QGA_CLOSED');
  await rejectsWith(client.ping(), 'QGA_CLOSED');
});

test('an answer of the wrong type is a protocol error', async () => {
  const agent = new ScriptedAgent();
  const client = new QgaClient(agent.hostSide, { clock: new ManualClock() });
  const status = client.freezeStatus();
  await agent.answerSync(1);
  await agent.command(2);
  agent.send('{"return": "melting"}\n');
  await rejectsWith(status, 'QGA_PROTOCOL_ERROR');
  client.close();
});
