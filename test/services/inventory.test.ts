import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { isZenithError } from '../../src/core/errors.js';
import type { DiscoveredObject, DiscoveredVm, PowerState } from '../../src/hypervisors/driver.js';
import { parseFilter } from '../../src/services/inventory/filter.js';
import type { ManagedObject } from '../../src/services/inventory/model.js';
import { startControlPlane } from '../../src/app/control-plane.js';
import { silentLogger } from '../../src/core/logger.js';
import {
  startTestPlane,
  storeKinds,
  adminPassword,
  type TestPlane,
} from '../../src/testing/control-plane.js';

const dc: DiscoveredObject = {
  kind: 'datacenter',
  externalId: 'dc',
  name: 'dc1',
  parent: null,
  facts: {},
};
const cluster: DiscoveredObject = {
  kind: 'cluster',
  externalId: 'cl',
  name: 'cl1',
  parent: { kind: 'datacenter', externalId: 'dc' },
  facts: {},
};
const host = (n: number): DiscoveredObject => ({
  kind: 'host',
  externalId: `h${n}`,
  name: `host-${n}`,
  parent: { kind: 'cluster', externalId: 'cl' },
  facts: { 'cpu.cores': 16, 'memory.totalBytes': 64 },
});
const vm = (
  n: number,
  hostN: number,
  power: PowerState = 'running',
  extra: Record<string, number | string> = {},
): DiscoveredVm => ({
  kind: 'vm',
  externalId: `v${n}`,
  name: `vm-${String(n).padStart(3, '0')}`,
  parent: { kind: 'host', externalId: `h${hostN}` },
  hostExternalId: `h${hostN}`,
  powerState: power,
  tags: n % 2 === 0 ? ['env:prod'] : ['env:dev'],
  facts: { 'power.state': power, 'cpu.count': (n % 4) + 1, 'memory.bytes': 1024, ...extra },
});

for (const kind of storeKinds) {
  describe(`inventory on ${kind}`, () => {
    const clock = new ManualClock(Date.UTC(2026, 5, 1, 12));
    let t: TestPlane;
    before(async () => {
      t = await startTestPlane({ store: kind, clock });
    });
    after(async () => t.close());
    const conn = 'conn_TEST';

    test('a first discovery creates the tree with parents, and repeating it changes nothing', async () => {
      const snapshot = [vm(1, 1), vm(2, 1, 'stopped'), dc, cluster, host(1), host(2)];
      const first = await t.plane.inventory.applySnapshot(conn, snapshot);
      assert.deepEqual(first, { created: 6, updated: 0, missing: 0, moved: 0 });
      const v1 = t.plane.inventory.resolve('vm', 'vm-001');
      const h1 = t.plane.inventory.resolve('host', 'host-1');
      assert.match(v1.id, /^vm_/);
      assert.equal(v1.parentId, h1.id);
      assert.equal(v1.computed['location.hostId'], h1.id);
      assert.equal(h1.parentId, t.plane.inventory.resolve('cluster', 'cl1').id);
      assert.equal(h1.computed['vms.total'], 2);
      assert.equal(h1.computed['vms.running'], 1);
      const again = await t.plane.inventory.applySnapshot(conn, snapshot);
      assert.deepEqual(again, { created: 0, updated: 0, missing: 0, moved: 0 });
    });

    test('a move and a power change append location history; "where was it at T" answers from it', async () => {
      const v1 = t.plane.inventory.resolve('vm', 'vm-001');
      const beforeMove = clock.now();
      await clock.advance(60_000);
      const moved = await t.plane.inventory.applyChanges(conn, [vm(1, 2)]);
      assert.equal(moved.moved, 1);
      await clock.advance(60_000);
      await t.plane.inventory.applyChanges(conn, [vm(1, 2, 'suspended')]);
      const history = await t.plane.inventory.locations.history(v1.id);
      assert.deepEqual(
        history.map((i) => [t.plane.inventory.get(i.hostId!).name, i.powerState, i.to === null]),
        [
          ['host-2', 'suspended', true],
          ['host-2', 'running', false],
          ['host-1', 'running', false],
        ],
      );
      const then = await t.plane.inventory.locations.at(v1.id, beforeMove + 30_000);
      assert.equal(then?.hostId, t.plane.inventory.resolve('host', 'host-1').id);
      const now = await t.plane.inventory.locations.at(v1.id, clock.now());
      assert.equal(now?.powerState, 'suspended');
      assert.equal(await t.plane.inventory.locations.at(v1.id, beforeMove - 3_600_000), null);
      const h1 = t.plane.inventory.resolve('host', 'host-1');
      assert.equal(h1.computed['vms.total'], 1, 'the old host no longer counts the VM');
    });

    test('an object the hypervisor stops reporting is marked missing, not deleted, and comes back', async () => {
      await clock.advance(1000);
      const result = await t.plane.inventory.applySnapshot(conn, [
        vm(1, 2, 'suspended'),
        dc,
        cluster,
        host(1),
        host(2),
      ]);
      assert.equal(result.missing, 1);
      const v2 = t.plane.inventory.resolve('vm', 'vm-002');
      assert.equal(v2.status, 'missing');
      assert.equal(v2.missingSince, clock.now());
      assert.equal(
        t.plane.inventory.locations.openInterval(v2.id),
        undefined,
        'its open interval is closed',
      );
      await clock.advance(1000);
      await t.plane.inventory.applySnapshot(conn, [
        vm(1, 2, 'suspended'),
        vm(2, 1, 'stopped'),
        dc,
        cluster,
        host(1),
        host(2),
      ]);
      const back = t.plane.inventory.get(v2.id);
      assert.equal(back.status, 'present');
      assert.equal(back.id, v2.id, 'the same object, not a duplicate');
    });

    test('user facts and tags survive rediscovery; discovered facts are read-only', async () => {
      const v1 = t.plane.inventory.resolve('vm', 'vm-001');
      await t.plane.inventory.setUserFacts(
        v1.id,
        { 'user.owner': 'alice' },
        { add: ['team:blue'] },
      );
      await t.plane.inventory.applySnapshot(conn, [
        vm(1, 2, 'suspended'),
        vm(2, 1, 'stopped'),
        dc,
        cluster,
        host(1),
        host(2),
      ]);
      const after = t.plane.inventory.get(v1.id);
      assert.equal(after.userFacts['user.owner'], 'alice');
      assert.deepEqual(after.tags, ['env:dev', 'team:blue']);
      await assert.rejects(
        t.plane.inventory.setUserFacts(v1.id, { 'power.state': 'stopped' }, {}),
        (e) => isZenithError(e) && e.code === 'ZEN_READ_ONLY_FACT',
      );
    });

    test('a restart rebuilds the same index from the store', async () => {
      const before = t.plane.inventory.index.query({ kind: 'vm', limit: 100 }).items;
      const again = await startControlPlane({
        dataDir: t.dataDir,
        databaseUrl: t.databaseUrl,
        adminPassword,
        logger: silentLogger,
        clock,
      });
      try {
        const reloaded = again.inventory.index.query({ kind: 'vm', limit: 100 }).items;
        assert.deepEqual(
          reloaded.map((o) => [o.id, o.name, o.status, o.tags, o.userFacts, o.computed]),
          before.map((o) => [o.id, o.name, o.status, o.tags, o.userFacts, o.computed]),
        );
      } finally {
        await again.close();
      }
    });
  });
}

describe('filters and pages over the index', () => {
  let t: TestPlane;
  before(async () => {
    t = await startTestPlane({ store: 'sqlite' });
    const objects: DiscoveredObject[] = [dc, cluster, host(1), host(2)];
    for (let n = 1; n <= 250; n++)
      objects.push(
        vm(
          n,
          (n % 2) + 1,
          n % 3 === 0 ? 'stopped' : 'running',
          n % 5 === 0 ? { 'guest.os': 'windows' } : {},
        ),
      );
    await t.plane.inventory.applySnapshot('conn_F', objects);
  });
  after(async () => t.close());
  const query = (filters: string[], tags: string[] = [], limit = 1000, sort?: string) =>
    t.plane.inventory.index.query({
      kind: 'vm',
      filters: filters.map(parseFilter),
      tags,
      limit,
      sort,
    });

  test('equality, comparison, substring, existence and tags combine', () => {
    assert.equal(query(['power.state=stopped']).items.length, 83);
    assert.equal(query(['power.state=stopped|running']).items.length, 250);
    assert.equal(query(['cpu.count>=3']).items.length, 125);
    assert.equal(
      query(['cpu.count>=3', 'power.state!=stopped']).items.filter(
        (v) => v.facts['power.state'] === 'stopped',
      ).length,
      0,
    );
    assert.equal(query(['name~VM-01']).items.length, 10, 'vm-010 … vm-019, case-insensitive');
    assert.equal(query(['guest.os']).items.length, 50);
    assert.equal(query(['!guest.os']).items.length, 200);
    assert.equal(query([], ['env:prod']).items.length, 125);
    assert.equal(query(['guest.os=windows'], ['env:prod']).items.length, 25);
  });

  test('cursor pages visit every match exactly once, in order, for any sort', () => {
    for (const sort of [undefined, '-name', 'cpu.count', '-cpu.count']) {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = t.plane.inventory.index.query({
          kind: 'vm',
          filters: [parseFilter('power.state=running')],
          limit: 7,
          sort,
          cursor,
        });
        seen.push(...page.items.map((o) => o.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      assert.equal(seen.length, 167, `sort ${sort}`);
      assert.equal(new Set(seen).size, 167, `sort ${sort}: no duplicates`);
    }
  });

  test('a sort order the index keeps follows changes: pages always equal a sort of everything', async () => {
    const index = t.plane.inventory.index;
    const pagesOf = (sort: string, filters: string[] = []) => {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = index.query({
          kind: 'vm',
          filters: filters.map(parseFilter),
          limit: 40,
          sort,
          cursor,
        });
        seen.push(...page.items.map((o) => o.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      return seen;
    };
    /** The expected order, computed here from every VM: by value (absent last), then id. */
    const expected = (sort: string, keep: (v: ManagedObject) => boolean = () => true) => {
      const key = sort.replace(/^-/, '');
      const value = (v: ManagedObject) => (key === 'name' ? v.name : v.facts[key]);
      const sign = sort.startsWith('-') ? -1 : 1;
      return index
        .ofKind('vm')
        .filter(keep)
        .sort((a, b) => {
          const [x, y] = [value(a), value(b)];
          const byValue =
            x === y
              ? 0
              : x === undefined
                ? 1
                : y === undefined
                  ? -1
                  : typeof x === 'number' && typeof y === 'number'
                    ? x - y
                    : String(x) < String(y)
                      ? -1
                      : 1;
          return sign * (byValue || (a.id < b.id ? -1 : 1));
        })
        .map((v) => v.id);
    };
    const sorts = ['memory.bytes', '-memory.bytes', 'cpu.count', '-name', 'guest.os'];
    for (const sort of sorts) assert.deepEqual(pagesOf(sort), expected(sort), sort);

    // Memory sizes change, a VM arrives, another is removed: the kept orders must follow.
    const objects: DiscoveredObject[] = [dc, cluster, host(1), host(2)];
    for (let n = 1; n <= 251; n++)
      objects.push(
        vm(n, (n % 2) + 1, n % 3 === 0 ? 'stopped' : 'running', {
          ...(n % 5 === 0 ? { 'guest.os': 'windows' } : {}),
          'memory.bytes': n % 7 === 0 ? 4096 * n : 1024,
        }),
      );
    await t.plane.inventory.applySnapshot('conn_F', objects);
    const check = (when: string) => {
      for (const sort of sorts) {
        assert.deepEqual(pagesOf(sort), expected(sort), `${sort} ${when}`);
        assert.deepEqual(
          pagesOf(sort, ['power.state=running']),
          expected(sort, (v) => v.facts['power.state'] === 'running'),
          `${sort} among running VMs ${when}`,
        );
      }
    };
    check('after the changes');
    assert.equal(pagesOf('memory.bytes').length, 251);
    index.remove(t.plane.inventory.resolve('vm', 'vm-100').id);
    check('after a removal');
    assert.equal(pagesOf('memory.bytes').length, 250);
    assert.equal(
      index.query({ kind: 'vm', limit: 1, sort: '-memory.bytes' }).items[0]!.name,
      'vm-245',
      'the largest memory first',
    );
  });

  test('a key named like a property every object has (constructor, toString, …) is no fact of anything', async () => {
    const inherited = ['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf'];
    for (const key of inherited) {
      assert.equal(query([key]).items.length, 0, `${key} exists nowhere`);
      assert.equal(query([`!${key}`]).items.length, 250, `${key} is absent everywhere`);
      assert.equal(query([`${key}~function`]).items.length, 0, `${key}~function`);
      // The equality index, too: it filed every object under the inherited value's text.
      const inheritedText = String(Reflect.get({}, key));
      assert.equal(query([`${key}=${inheritedText}`]).items.length, 0, `${key}=${inheritedText}`);
      assert.equal(query([`${key}!=anything`]).items.length, 250);
    }
    // Not even a key a filter may name.
    assert.throws(
      () => parseFilter('__proto__'),
      (e) => isZenithError(e) && e.code === 'ZEN_BAD_FILTER',
    );
    // Nor a discovered or computed fact that a user could not write for that reason.
    const vm1 = t.plane.inventory.resolve('vm', 'vm-001');
    await assert.rejects(
      t.plane.inventory.setUserFacts(vm1.id, { constructor: 'x' }, {}),
      (e) => isZenithError(e) && e.code === 'ZEN_BAD_REQUEST',
    );
  });

  test('bad filters and cursors are refused with their codes', () => {
    for (const bad of ['', '=x', 'cpu.count>=many', 'power.state=', '!a=b', 'x'.repeat(600)]) {
      assert.throws(
        () => parseFilter(bad),
        (e) => isZenithError(e) && e.code === 'ZEN_BAD_FILTER',
        bad,
      );
    }
    assert.throws(
      () => t.plane.inventory.index.query({ kind: 'vm', limit: 5, cursor: 'not-a-cursor' }),
      (e) => isZenithError(e) && e.code === 'ZEN_BAD_CURSOR',
    );
  });
});
