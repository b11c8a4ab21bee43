/**
 * The storage heartbeat file both ends share: its path, its validation (garbage, truncated or out
 * of shape is a coded error), and its atomic write — a reader in another thread, reading as fast as
 * it can while heartbeats are written, never sees part of one.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { isZenithError } from '../../src/core/errors.js';
import {
  heartbeatPath,
  parseHeartbeat,
  readHeartbeatDir,
  readHeartbeatFile,
  writeHeartbeatFile,
  type HaHeartbeat,
} from '../../src/protocols/ha-heartbeat.js';

const coded = (code: string, message?: RegExp) => (error: unknown) =>
  isZenithError(error) && error.code === code && (!message || message.test(error.message));

const base = mkdtempSync(join(tmpdir(), 'zenith-ha-heartbeat-'));
after(() => rmSync(base, { recursive: true, force: true }));

const heartbeat = (changes: Partial<HaHeartbeat> = {}): HaHeartbeat => ({
  format: 1,
  host: 'host-a',
  bootId: 'b0a1',
  counter: 7,
  writtenAt: 1_767_225_600_000,
  heartbeatMs: 1000,
  channel: 'down',
  channelDownSince: 1_767_225_598_000,
  vms: [{ uuid: '5d1e0000-0000-4000-8000-000000000001', running: false }],
  released: ['5d1e0000-0000-4000-8000-000000000001'],
  fencedAt: null,
  ...changes,
});

describe('the storage heartbeat file', () => {
  test('lives at <root>/.zenith-ha/<host>.json; a name that is not a file name of its own is refused', () => {
    assert.equal(heartbeatPath('/srv/shared', 'host-a'), '/srv/shared/.zenith-ha/host-a.json');
    for (const name of ['../etc/passwd', '.hidden', 'a/b', ''])
      assert.throws(() => heartbeatPath('/srv/shared', name), coded('ZEN_BAD_REQUEST'));
  });

  test('parses a heartbeat; garbage, a truncated file or a field out of shape is ZEN_HA_HEARTBEAT_INVALID', () => {
    const text = JSON.stringify(heartbeat());
    assert.deepEqual(parseHeartbeat(text), heartbeat());
    assert.throws(() => parseHeartbeat('\u0000\u0000garbage'), coded('ZEN_HA_HEARTBEAT_INVALID'));
    assert.throws(() => parseHeartbeat(''), coded('ZEN_HA_HEARTBEAT_INVALID'));
    assert.throws(
      () => parseHeartbeat(text.slice(0, text.length - 20)),
      coded('ZEN_HA_HEARTBEAT_INVALID', /truncated/),
    );
    assert.throws(
      () => parseHeartbeat(JSON.stringify(heartbeat({ channel: 'sideways' as 'up' }))),
      coded('ZEN_HA_HEARTBEAT_INVALID', /\/channel/),
    );
    assert.throws(
      () => parseHeartbeat(JSON.stringify({ ...heartbeat(), format: 2 })),
      coded('ZEN_HA_HEARTBEAT_INVALID', /\/format/),
    );
    const { counter: _, ...noCounter } = heartbeat();
    assert.throws(
      () => parseHeartbeat(JSON.stringify(noCounter)),
      coded('ZEN_HA_HEARTBEAT_INVALID'),
    );
  });

  test('reads back what was written; an absent file is null; the directory lists heartbeats and reports the rest', async () => {
    const root = join(base, 'roundtrip');
    assert.equal(await readHeartbeatFile(heartbeatPath(root, 'host-a')), null);
    assert.deepEqual(await readHeartbeatDir(root), { heartbeats: [], invalid: [] });
    await writeHeartbeatFile(root, heartbeat());
    await writeHeartbeatFile(root, heartbeat({ host: 'host-b', counter: 1 }));
    assert.deepEqual(await readHeartbeatFile(heartbeatPath(root, 'host-a')), heartbeat());
    writeFileSync(join(root, '.zenith-ha', 'host-c.json'), '{"format":1,"host":"ho');
    writeFileSync(join(root, '.zenith-ha', '.host-a.0123.tmp'), 'half a write');
    const listed = await readHeartbeatDir(root);
    assert.deepEqual(
      listed.heartbeats.map((h) => [h.host, h.counter]),
      [
        ['host-a', 7],
        ['host-b', 1],
      ],
    );
    assert.deepEqual(
      listed.invalid.map((i) => i.file),
      ['host-c.json'],
    );
  });

  test('a write where the directory cannot be made fails and leaves the old heartbeat as it was', async () => {
    const root = join(base, 'broken');
    mkdirSync(root);
    writeFileSync(join(root, '.zenith-ha'), 'not a directory');
    await assert.rejects(writeHeartbeatFile(root, heartbeat()));
    const good = join(base, 'kept');
    await writeHeartbeatFile(good, heartbeat({ counter: 1 }));
    await assert.rejects(writeHeartbeatFile(good, heartbeat({ counter: 2, host: 'bad/name' })));
    assert.equal((await readHeartbeatFile(heartbeatPath(good, 'host-a')))?.counter, 1);
  });

  test('is written atomically: a reader in another thread never sees part of a heartbeat, and no temporary file is left', async () => {
    const root = join(base, 'atomic');
    // A big heartbeat (about 200 KB): a write in place would be seen half done.
    const vms = Array.from({ length: 3000 }, (_, i) => ({
      uuid: `5d1e0000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      running: i % 2 === 0,
    }));
    await writeHeartbeatFile(root, heartbeat({ counter: 0, vms }));
    const path = heartbeatPath(root, 'host-a');
    const reader = new Worker(
      `
      const { readFileSync } = require('node:fs');
      const { parentPort, workerData } = require('node:worker_threads');
      let reads = 0, bad = 0, backwards = 0, last = -1, stop = false;
      parentPort.on('message', () => { stop = true; });
      const loop = () => {
        for (let i = 0; i < 50; i++) {
          try {
            const value = JSON.parse(readFileSync(workerData.path, 'utf8'));
            if (value.vms.length !== 3000) bad++;
            if (value.counter < last) backwards++;
            last = value.counter;
          } catch { bad++; }
          reads++;
        }
        if (stop) parentPort.postMessage({ reads, bad, backwards, last });
        else setImmediate(loop);
      };
      loop();
      `,
      { eval: true, workerData: { path } },
    );
    const writes = 150;
    for (let counter = 1; counter <= writes; counter++)
      await writeHeartbeatFile(root, heartbeat({ counter, vms }));
    const answer = new Promise<{ reads: number; bad: number; backwards: number; last: number }>(
      (resolve) => reader.once('message', resolve),
    );
    reader.postMessage('stop');
    const seen = await answer;
    await reader.terminate();
    assert.ok(seen.reads > 100, `the reader read ${seen.reads} times`);
    assert.equal(seen.bad, 0, 'every read was a whole heartbeat');
    assert.equal(seen.backwards, 0, 'the counter never went back');
    assert.equal(seen.last, writes);
    assert.deepEqual(readdirSync(join(root, '.zenith-ha')), ['host-a.json']);
  });
});
