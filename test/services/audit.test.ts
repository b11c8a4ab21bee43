import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestPlane, storeKinds, type TestPlane } from '../../src/testing/control-plane.js';
import type { Actor } from '../../src/services/audit/audit-service.js';

const alice: Actor = { id: 'usr_alice', kind: 'user', name: 'alice' };

for (const kind of storeKinds) {
  describe(`audit trail on ${kind}`, () => {
    let t: TestPlane;
    before(async () => {
      t = await startTestPlane({ store: kind });
    });
    after(async () => t.close());

    const fill = async () => {
      await t.plane.store.db.deleteFrom('audit').execute();
      const inputs = Array.from({ length: 20 }, (_, i) => ({
        actor: alice,
        action: `vm.start`,
        targetId: `vm_${i}`,
        params: { n: i },
        result: 'succeeded' as const,
      }));
      await t.plane.audit.append(inputs);
    };

    test('an untouched chain verifies, and secrets never reach a record', async () => {
      await fill();
      const [record] = await t.plane.audit.append([
        {
          actor: alice,
          action: 'connection.add',
          params: { name: 'esx', secret: 'hunter2', nested: { password: 'x', ok: 1 } },
          result: 'succeeded',
        },
      ]);
      assert.deepEqual(record!.params, {
        name: 'esx',
        secret: '[redacted]',
        nested: { password: '[redacted]', ok: 1 },
      });
      const result = await t.plane.audit.verify();
      assert.equal(result.ok, true);
      assert.equal(result.records, 21);
    });

    test('an edited record is named', async () => {
      await fill();
      await t.plane.store.db
        .updateTable('audit')
        .set({ actor_name: 'mallory' })
        .where('seq', '=', 7)
        .execute();
      const result = await t.plane.audit.verify();
      assert.equal(result.ok, false);
      assert.deepEqual([result.firstBad?.seq, result.firstBad?.problem], [7, 'edited']);
    });

    test('a deleted record is named', async () => {
      await fill();
      await t.plane.store.db.deleteFrom('audit').where('seq', '=', 12).execute();
      const result = await t.plane.audit.verify();
      assert.deepEqual(
        [result.ok, result.firstBad?.seq, result.firstBad?.problem],
        [false, 13, 'deleted'],
      );
      assert.match(result.firstBad!.detail, /12/);
    });

    test('reordered records are named', async () => {
      await fill();
      // Swap records 4 and 5 (their sequence numbers change places).
      await sql`update audit set seq = -1 where seq = 4`.execute(t.plane.store.db);
      await sql`update audit set seq = 4 where seq = 5`.execute(t.plane.store.db);
      await sql`update audit set seq = 5 where seq = -1`.execute(t.plane.store.db);
      const result = await t.plane.audit.verify();
      assert.deepEqual(
        [result.ok, result.firstBad?.seq, result.firstBad?.problem],
        [false, 4, 'reordered'],
      );
    });
  });
}
