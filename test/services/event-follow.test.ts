/**
 * Following the events (EventBus.follow, services/events/event-follower.ts): what was missed, then
 * what happens, in order and once each, at the consumer's pace, with idle marks on the injected
 * clock. Against an event source in memory that speaks the bus's interface.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ZenithEvent } from '../../src/api/events.js';
import { ManualClock } from '../../src/core/clock.js';
import {
  followEvents,
  type EventSource,
  type Followed,
} from '../../src/services/events/event-follower.js';

class MemorySource implements EventSource {
  readonly events: ZenithEvent[] = [];
  readonly listeners = new Set<(event: ZenithEvent) => void>();
  /** How many pages were read from the "store". */
  reads = 0;

  publish(type: 'inventory.updated' | 'task.running', objectId: string): ZenithEvent {
    const seq = this.events.length + 1;
    const event = (
      type === 'task.running'
        ? { seq, type, objectId, data: { kind: 'vm.start', targetId: null }, ts: seq }
        : { seq, type, objectId, data: { kind: 'vm', name: objectId }, ts: seq }
    ) as ZenithEvent;
    this.events.push(event);
    for (const listener of this.listeners) listener(event);
    return event;
  }

  async list(options: { afterSeq?: number | undefined; limit: number }): Promise<ZenithEvent[]> {
    this.reads++;
    return this.events.filter((e) => e.seq > (options.afterSeq ?? 0)).slice(0, options.limit);
  }

  async lastSeq(): Promise<number> {
    return this.events.length;
  }

  subscribe(listener: (event: ZenithEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const seqs = (items: Followed[]) =>
  items.map((item) => (item.kind === 'event' ? item.event.seq : 'idle'));

/** Takes the next `n` items of a follower. */
async function take(follower: AsyncGenerator<Followed>, n: number): Promise<Followed[]> {
  const out: Followed[] = [];
  while (out.length < n) {
    const next = await follower.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

test('what was missed comes first, a page at a time, then live events, each once and in order', async () => {
  const source = new MemorySource();
  for (let i = 0; i < 5; i++) source.publish('inventory.updated', `vm-${i}`);
  const stop = new AbortController();
  const follower = followEvents(source, new ManualClock(), 1, {}, stop.signal, { pageSize: 2 });
  const first = await take(follower, 2);
  // Published while the follower is still replaying: delivered once, after what came before.
  source.publish('inventory.updated', 'vm-5');
  source.publish('inventory.updated', 'vm-6');
  const rest = await take(follower, 4);
  assert.deepEqual(seqs([...first, ...rest]), [2, 3, 4, 5, 6, 7]);
  assert.ok(source.reads >= 3, `read in pages of 2 (${source.reads} reads)`);
  source.publish('inventory.updated', 'vm-7');
  assert.deepEqual(seqs(await take(follower, 1)), [8]);
  stop.abort();
  assert.equal((await follower.next()).done, true);
  assert.equal(source.listeners.size, 0, 'it unsubscribes when stopped');
});

test('without a sequence number it starts from now', async () => {
  const source = new MemorySource();
  source.publish('inventory.updated', 'vm-old');
  const stop = new AbortController();
  const follower = followEvents(source, new ManualClock(), undefined, {}, stop.signal);
  const next = follower.next();
  await new Promise((resolve) => setImmediate(resolve));
  source.publish('inventory.updated', 'vm-new');
  const first = await next;
  assert.equal(first.done, false);
  assert.deepEqual(seqs([first.value]), [2]);
  stop.abort();
  await follower.return(undefined);
});

test('filters by type, object and visibility, asked as each event is delivered', async () => {
  const source = new MemorySource();
  const hidden = new Set<string>(['vm-b']);
  const stop = new AbortController();
  const follower = followEvents(
    source,
    new ManualClock(),
    0,
    { type: 'inventory.', visible: (event) => !hidden.has(event.objectId ?? '') },
    stop.signal,
  );
  source.publish('inventory.updated', 'vm-a');
  source.publish('task.running', 'task-1');
  source.publish('inventory.updated', 'vm-b');
  assert.deepEqual(seqs(await take(follower, 1)), [1]);
  // Asked at delivery: made visible before its turn, the event about vm-b (seq 3) comes.
  hidden.clear();
  assert.deepEqual(seqs(await take(follower, 1)), [3]);
  hidden.add('vm-b');
  source.publish('inventory.updated', 'vm-b');
  source.publish('inventory.updated', 'vm-a');
  assert.deepEqual(seqs(await take(follower, 1)), [5]);
  stop.abort();
  await follower.return(undefined);
});

test('a consumer that falls behind gets every event in order from the store, with no more than maxQueued held for it', async () => {
  const source = new MemorySource();
  const stop = new AbortController();
  const follower = followEvents(source, new ManualClock(), 0, {}, stop.signal, {
    maxQueued: 3,
    pageSize: 4,
  });
  source.publish('inventory.updated', 'vm-0');
  assert.deepEqual(seqs(await take(follower, 1)), [1]);
  const readsBefore = source.reads;
  // The consumer reads nothing while ten events happen.
  for (let i = 1; i <= 10; i++) source.publish('inventory.updated', `vm-${i}`);
  assert.deepEqual(seqs(await take(follower, 10)), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.ok(source.reads > readsBefore, 'the overflow was read from the store again');
  stop.abort();
  await follower.return(undefined);
});

test('after idleMs of the clock without an event it yields an idle mark', async () => {
  const source = new MemorySource();
  const clock = new ManualClock();
  const stop = new AbortController();
  const follower = followEvents(source, clock, 0, {}, stop.signal, { idleMs: 15_000 });
  const next = follower.next();
  await new Promise((resolve) => setImmediate(resolve));
  let settled = false;
  void next.then(() => (settled = true));
  await clock.advance(14_999);
  assert.equal(settled, false, 'nothing before idleMs');
  await clock.advance(1);
  assert.deepEqual(seqs([(await next).value as Followed]), ['idle']);
  stop.abort();
  await follower.return(undefined);
});
