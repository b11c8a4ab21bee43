import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';

/** Reads SSE events until `enough` says stop or the time runs out. */
async function readEvents(
  url: string,
  headers: Record<string, string>,
  enough: (events: Array<{ seq: number; type: string }>) => boolean,
): Promise<Array<{ seq: number; type: string }>> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5000);
  const events: Array<{ seq: number; type: string }> = [];
  try {
    const response = await fetch(url, { headers, signal: controller.signal });
    let buffer = '';
    for await (const chunk of response.body!) {
      buffer += Buffer.from(chunk as Uint8Array).toString();
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').find((line) => line.startsWith('data: '));
        if (data) events.push(JSON.parse(data.slice(6)));
      }
      if (enough(events)) break;
    }
  } catch (error) {
    if ((error as Error).name !== 'AbortError') throw error;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return events;
}

describe('the event stream', () => {
  let s: TestServer;
  let token: string;
  before(async () => {
    s = await startTestServer();
    token = await s.login();
  });
  after(async () => s.close());

  test('a client that reconnects with Last-Event-ID gets exactly what it missed, in order, then live events', async () => {
    const first = await s.request('GET', '/events?limit=1000', { token });
    const lastSeen = first.body.items.at(-1)?.seq ?? 0;
    await s.request('POST', '/connections', {
      token,
      body: { name: 'sim', type: 'simulated', settings: { timeScale: 0.01, vmsPerHost: 1 } },
    });
    const missed = (
      await s.request('GET', `/events?since=${lastSeen}&limit=1000`, { token })
    ).body.items.map((e: { seq: number }) => e.seq);
    assert.ok(missed.length > 5);
    const vm = (await s.request('GET', '/vms?filter=power.state=running&limit=1', { token })).body
      .items[0];
    const streamed = readEvents(
      `${s.baseUrl}/api/v1/events/stream`,
      { authorization: `Bearer ${token}`, 'last-event-id': String(lastSeen) },
      (events) => events.some((e) => e.type === 'task.succeeded'),
    );
    await new Promise((r) => setTimeout(r, 200));
    await s.request('POST', `/vms/${vm.id}/suspend`, { token });
    const events = await streamed;
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs.slice(0, missed.length), missed, 'the missed events first, in order');
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'no event out of order',
    );
    assert.equal(new Set(seqs).size, seqs.length, 'no event twice');
    assert.ok(
      events.some((e) => e.type === 'task.succeeded'),
      'then live events',
    );
  });

  test('the stream filters by type and needs credentials (a session cookie works too)', async () => {
    assert.equal((await fetch(`${s.baseUrl}/api/v1/events/stream`)).status, 401);
    const events = await readEvents(
      `${s.baseUrl}/api/v1/events/stream?type=connection.&since=0`,
      { cookie: `zenith_session=${encodeURIComponent(token)}` },
      (list) => list.length > 0,
    );
    assert.ok(events.length > 0);
    assert.ok(events.every((e) => e.type.startsWith('connection.')));
  });
});
