import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { SseStream, type SseMessage } from '../../src/testing/sse-client.js';
import { until } from '../../src/testing/wait.js';

const tokenIdOf = (token: string) => token.slice(0, token.indexOf('.'));
const closedWith = (code: string) => (m: SseMessage) =>
  m.event === 'stream.closed' && m.data.error?.code === code;

describe('an open event stream follows its credential and the access of its user', () => {
  let s: TestServer;
  let admin: string;
  let clusters: ApiAnswer[];
  let vmIn: (clusterId: string) => Promise<ApiAnswer>;
  let users = 0;
  /** A user of this role with a password; answers its id, name and a session token. */
  const newUser = async (role: string) => {
    const name = `user-${++users}`;
    const password = `password-of-${name}`;
    const created = await s.request('POST', '/users', {
      token: admin,
      body: { name, role, password },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return {
      id: created.body.identity.id as string,
      name,
      password,
      token: await s.login(name, password),
    };
  };
  const stream = (token: string, query = '') =>
    SseStream.open(`${s.baseUrl}/api/v1/events/stream${query}`, {
      authorization: `Bearer ${token}`,
    });
  const touch = async (objectId: string) => {
    const answer = await s.request('PATCH', `/objects/${objectId}`, {
      token: admin,
      body: { facts: { 'user.touched': String(Date.now()) } },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  };

  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    await s.addSimulatedFleet(admin, {
      timeScale: 0,
      clustersPerDatacenter: 2,
      hostsPerCluster: 1,
      vmsPerHost: 1,
    });
    clusters = (await s.request('GET', '/clusters', { token: admin })).body.items;
    vmIn = async (clusterId) =>
      (await s.request('GET', '/vms?limit=1000', { token: admin })).body.items.find(
        (vm: ApiAnswer) => vm.computed['location.clusterId'] === clusterId,
      );
  });
  after(async () => s.close());

  test('revoking the token of an open stream ends it at once, with a stream.closed event carrying ZEN_TOKEN_EXPIRED', async () => {
    const rita = await newUser('viewer');
    const open = await stream(rita.token);
    const revoked = await s.request('DELETE', `/tokens/${tokenIdOf(rita.token)}`, {
      token: admin,
    });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    await open.waitForEnd();
    const last = open.messages.at(-1);
    assert.ok(last && closedWith('ZEN_TOKEN_EXPIRED')(last), JSON.stringify(open.messages));
    assert.match(last.data.error.message, /revoked/);
    const again = await s.request('GET', '/events', { token: rita.token });
    assert.equal(again.body.error.code, 'ZEN_TOKEN_EXPIRED', 'and the token opens nothing more');
  });

  test('disabling a user ends every stream of theirs, of sessions and API tokens alike, with ZEN_UNAUTHENTICATED', async () => {
    const dan = await newUser('viewer');
    const apiToken = (
      await s.request('POST', '/tokens', { token: dan.token, body: { name: 'script' } })
    ).body.token as string;
    const [bySession, byToken] = [await stream(dan.token), await stream(apiToken)];
    const watcher = await stream(admin);
    const disabled = await s.request('PATCH', `/users/${dan.id}`, {
      token: admin,
      body: { disabled: true },
    });
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body));
    for (const open of [bySession, byToken]) {
      await open.waitForEnd();
      const last = open.messages.at(-1);
      assert.ok(last && closedWith('ZEN_UNAUTHENTICATED')(last), JSON.stringify(open.messages));
      assert.match(last.data.error.message, /disabled/);
    }
    assert.equal(watcher.isEnded, false, "another user's stream stays open");
    watcher.close();
  });

  test("a new password ends the streams of that user's other sessions and API tokens; the session that changed it goes on", async () => {
    const pia = await newUser('viewer');
    const other = await s.login(pia.name, pia.password);
    const apiToken = (
      await s.request('POST', '/tokens', { token: pia.token, body: { name: 'script' } })
    ).body.token as string;
    const own = await stream(pia.token, '?type=inventory.');
    const bySession = await stream(other);
    const byToken = await stream(apiToken);
    const changed = await s.request('POST', `/users/${pia.id}/password`, {
      token: pia.token,
      body: { currentPassword: pia.password, password: 'a-new-password-for-pia' },
    });
    assert.equal(changed.status, 204, JSON.stringify(changed.body));
    for (const ended of [bySession, byToken]) {
      await ended.waitForEnd();
      const last = ended.messages.at(-1);
      assert.ok(last && closedWith('ZEN_TOKEN_EXPIRED')(last), JSON.stringify(ended.messages));
    }
    const vm = await vmIn(clusters[0].id);
    await touch(vm.id);
    await own.waitFor(`an event about ${vm.name}`, (m) => m.data.objectId === vm.id);
    assert.equal(own.isEnded, false);
    own.close();
  });

  test('a binding removed: events about the objects it reached stop at once; added again: they come again; the last one removed ends the stream with ZEN_FORBIDDEN', async () => {
    const bea = await newUser('none');
    const [a, b] = clusters as [ApiAnswer, ApiAnswer];
    const bind = async (scope: string) => {
      const created = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: bea.name, role: 'viewer', scope },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body.id as string;
    };
    const unbind = async (id: string) => {
      const removed = await s.request('DELETE', `/role-bindings/${id}`, { token: admin });
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
    };
    const onA = await bind(a.id);
    const onB = await bind(b.id);
    const [vmA, vmB] = [await vmIn(a.id), await vmIn(b.id)];
    const open = await stream(bea.token, '?type=inventory.updated');
    const eventsAbout = (id: string, after: number) =>
      open.messages.filter((m) => m.data.objectId === id && m.data.seq > after);

    await touch(vmA.id);
    await open.waitFor(`an event about ${vmA.name}`, (m) => m.data.objectId === vmA.id);

    await unbind(onA);
    const mark = open.messages.at(-1)!.data.seq as number;
    await touch(vmA.id);
    await touch(vmB.id);
    // Events arrive in order: once the later event about B is here, one about A would be too.
    await open.waitFor(
      `the event about ${vmB.name}`,
      (m) => m.data.objectId === vmB.id && m.data.seq > mark,
    );
    assert.deepEqual(
      eventsAbout(vmA.id, mark),
      [],
      `nothing about ${vmA.name} after the unbinding`,
    );

    const again = await bind(a.id);
    const mark2 = open.messages.at(-1)!.data.seq as number;
    await touch(vmA.id);
    await open.waitFor(
      `an event about ${vmA.name} once bound again`,
      (m) => m.data.objectId === vmA.id && m.data.seq > mark2,
    );

    await unbind(onB);
    assert.equal(open.isEnded, false, 'one binding still reaches events');
    await unbind(again);
    await open.waitForEnd();
    const last = open.messages.at(-1);
    assert.ok(last && closedWith('ZEN_FORBIDDEN')(last), JSON.stringify(open.messages));
  });

  test("a resource group's selector changed: an open stream of a user bound to the group delivers what it picks now", async () => {
    const gus = await newUser('none');
    const [a, b] = clusters as [ApiAnswer, ApiAnswer];
    const group = await s.request('POST', '/resource-groups', {
      token: admin,
      body: { name: 'picks-later', parentId: a.id },
    });
    assert.equal(group.status, 201, JSON.stringify(group.body));
    const bound = await s.request('POST', '/role-bindings', {
      token: admin,
      body: { subject: gus.name, role: 'viewer', scope: group.body.id },
    });
    assert.equal(bound.status, 201, JSON.stringify(bound.body));
    const [vmA, vmB] = [await vmIn(a.id), await vmIn(b.id)];
    const open = await stream(gus.token, '?type=inventory.updated');
    const selected = await s.request('PATCH', `/objects/${group.body.id}`, {
      token: admin,
      body: { facts: { 'user.selector': 'kind=vm' } },
    });
    assert.equal(selected.status, 200, JSON.stringify(selected.body));
    const mark = open.messages.at(-1)?.data.seq ?? 0;
    await touch(vmB.id);
    await touch(vmA.id);
    await open.waitFor(
      `an event about ${vmA.name}, which the group picks now`,
      (m) => m.data.objectId === vmA.id && m.data.seq > mark,
    );
    // The selector picks only under the group's parent (cluster A): nothing about cluster B.
    assert.deepEqual(
      open.messages.filter((m) => m.data.objectId === vmB.id),
      [],
    );
    open.close();
  });

  test('a role taken away from the user ends the stream with ZEN_FORBIDDEN; a role given widens what it delivers', async () => {
    const cam = await newUser('none');
    const [a, b] = clusters as [ApiAnswer, ApiAnswer];
    await s.request('POST', '/role-bindings', {
      token: admin,
      body: { subject: cam.name, role: 'viewer', scope: a.id },
    });
    const vmB = await vmIn(b.id);
    const open = await stream(cam.token, '?type=inventory.updated');
    const promoted = await s.request('PATCH', `/users/${cam.id}`, {
      token: admin,
      body: { role: 'viewer' },
    });
    assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
    await touch(vmB.id);
    await open.waitFor(`an event about ${vmB.name}`, (m) => m.data.objectId === vmB.id);
    const other = await newUser('viewer');
    const otherStream = await stream(other.token);
    await s.request('PATCH', `/users/${other.id}`, { token: admin, body: { role: 'none' } });
    await otherStream.waitForEnd();
    const last = otherStream.messages.at(-1);
    assert.ok(last && closedWith('ZEN_FORBIDDEN')(last), JSON.stringify(otherStream.messages));
    assert.equal(open.isEnded, false);
    open.close();
  });

  test('streams their clients close leave no live session behind', async () => {
    const ida = await newUser('viewer');
    const tokenId = tokenIdOf(ida.token);
    const registered = () => s.plane.sessions.live.tokenIds().includes(tokenId);
    const streams = await Promise.all([1, 2, 3].map(() => stream(ida.token)));
    assert.ok(registered(), 'each open stream is a live session of its token');
    for (const open of streams) open.close();
    await until('the closed streams to be forgotten', async () =>
      registered() ? undefined : true,
    );
  });

  test('a token revoked or expired behind this process (another replica, the clock) ends its stream at the next sweep', async () => {
    const ola = await newUser('viewer');
    const second = await s.login(ola.name, ola.password);
    const [revokedElsewhere, expiring] = [await stream(ola.token), await stream(second)];
    const now = s.plane.clock.now();
    // Written to the store directly, as another replica would: this process's cache knows nothing.
    await s.plane.store.db
      .updateTable('tokens')
      .set({ revoked_at: now })
      .where('id', '=', tokenIdOf(ola.token))
      .execute();
    await s.plane.store.db
      .updateTable('tokens')
      .set({ expires_at: now })
      .where('id', '=', tokenIdOf(second))
      .execute();
    assert.equal(await s.plane.sessions.sweepSessions(), 2);
    for (const [open, why] of [
      [revokedElsewhere, /revoked/],
      [expiring, /expired/],
    ] as const) {
      await open.waitForEnd();
      const last = open.messages.at(-1);
      assert.ok(last && closedWith('ZEN_TOKEN_EXPIRED')(last), JSON.stringify(open.messages));
      assert.match(last.data.error.message, why);
    }
  });
});

test('stopping the server ends its open event streams with ZEN_SHUTTING_DOWN instead of waiting for them', async () => {
  const s = await startTestServer();
  let closed = false;
  try {
    const admin = await s.login();
    const open = await SseStream.open(`${s.baseUrl}/api/v1/events/stream`, {
      authorization: `Bearer ${admin}`,
    });
    await s.close();
    closed = true;
    await open.waitForEnd();
    const last = open.messages.at(-1);
    assert.ok(last && closedWith('ZEN_SHUTTING_DOWN')(last), JSON.stringify(open.messages));
  } finally {
    if (!closed) await s.close();
  }
});
