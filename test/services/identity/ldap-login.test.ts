import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  adminPassword,
  startTestServer,
  type TestServer,
} from '../../../src/testing/control-plane.js';
import { LdapDirectory, type LdapSettings } from '../../../src/services/identity/ldap-directory.js';
import {
  ldapAdminDn,
  ldapAdminPassword,
  ldapBase,
  startSlapd,
  type Slapd,
} from '../../../src/testing/slapd.js';

describe('LDAP login against a real slapd', () => {
  let slapd: Slapd;
  let s: TestServer;
  let admin: string;
  let settings: LdapSettings;
  before(async () => {
    slapd = await startSlapd([
      {
        uid: 'carol',
        password: 'carol-directory-pw',
        groups: ['engineers', 'staff'],
        department: 'eng',
      },
      { uid: 'dave', password: 'dave-directory-pw', groups: ['staff'] },
      // Replacement patterns of String.prototype.replace in directory names.
      { uid: "o$'neil", password: 'oneil-directory-pw', groups: ['staff'] },
      { uid: 'pay$`roll$&', password: 'payroll-directory-pw', groups: ['engineers'] },
    ]);
    settings = {
      url: slapd.url,
      bindDn: ldapAdminDn,
      bindPassword: ldapAdminPassword,
      userBase: `ou=people,${ldapBase}`,
      groupBase: `ou=groups,${ldapBase}`,
      groupMap: { engineers: 'engineering' },
      attributeMap: { departmentNumber: 'department' },
      timeoutMs: 2_000,
    };
    s = await startTestServer({ ldap: settings });
    admin = await s.login();
    await s.request('POST', '/groups', { token: admin, body: { name: 'engineering' } });
    const bound = await s.request('POST', '/role-bindings', {
      token: admin,
      body: { subject: 'engineering', role: 'viewer' },
    });
    assert.equal(bound.status, 201);
  });
  after(async () => {
    await s?.close();
    await slapd?.close();
  });

  test('a directory user logs in and gets the access of the Zenith group its directory group maps to', async () => {
    const login = await s.request('POST', '/auth/login', {
      body: { username: 'carol', password: 'carol-directory-pw' },
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.equal(login.body.identity.source, 'ldap');
    assert.equal(login.body.identity.role, 'none');
    const group = await s.request('GET', '/groups/engineering', { token: admin });
    assert.deepEqual(
      group.body.members.map((m: { name: string }) => m.name),
      ['carol'],
    );
    assert.equal((await s.request('GET', '/vms', { token: login.body.token })).status, 200);

    // dave is in no mapped group: he logs in and may do nothing.
    const dave = await s.request('POST', '/auth/login', {
      body: { username: 'dave', password: 'dave-directory-pw' },
    });
    assert.equal(dave.status, 200);
    assert.equal((await s.request('GET', '/vms', { token: dave.body.token })).status, 403);

    // Directory attributes mapped to identity attributes, for binding conditions (subject.department).
    const users = (await s.request('GET', '/users', { token: admin })).body.items as Array<{
      name: string;
      attributes: Record<string, unknown>;
    }>;
    assert.deepEqual(users.find((u) => u.name === 'carol')?.attributes, { department: 'eng' });
    assert.deepEqual(users.find((u) => u.name === 'dave')?.attributes, {});
  });

  test('a wrong password, an unknown user or a filter in the name is refused as bad credentials', async () => {
    for (const [username, password] of [
      ['carol', 'not-her-password'],
      ['mallory', 'whatever-password'],
      ['*', 'carol-directory-pw'],
    ] as const) {
      const answer = await s.request('POST', '/auth/login', { body: { username, password } });
      assert.equal(answer.status, 401, `${username}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error.code, 'ZEN_BAD_CREDENTIALS');
    }
  });

  test("names holding $' $` or $& are searched as written, not spliced into the filter", async () => {
    const directory = new LdapDirectory(settings);
    const oneil = await directory.authenticate("o$'neil", 'oneil-directory-pw');
    assert.equal(oneil?.dn, `uid=o$'neil,ou=people,${ldapBase}`);
    assert.deepEqual(oneil?.groups, ['staff']);
    // The DN goes into the group filter the same way.
    const payroll = await directory.authenticate('pay$`roll$&', 'payroll-directory-pw');
    assert.deepEqual(payroll?.groups, ['engineers']);
    assert.equal(await directory.authenticate("o$'neil", 'carol-directory-pw'), null);
    // Through the API such a name is no Zenith name: bad credentials, never a directory error (one
    // attempt: failures from this address count towards its limit).
    const answer = await s.request('POST', '/auth/login', {
      body: { username: "carol$'", password: 'carol-directory-pw' },
    });
    assert.equal(answer.status, 401, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'ZEN_BAD_CREDENTIALS');
  });

  test('with the directory down, directory users get a clear error and local accounts still log in', async () => {
    await slapd.stop();
    try {
      const carol = await s.request('POST', '/auth/login', {
        body: { username: 'carol', password: 'carol-directory-pw' },
      });
      assert.equal(carol.status, 503);
      assert.equal(carol.body.error.code, 'ZEN_DIRECTORY_UNAVAILABLE');
      assert.doesNotMatch(JSON.stringify(carol.body), /carol-directory-pw|ldap-admin-password/);
      const local = await s.request('POST', '/auth/login', {
        body: { username: 'admin', password: adminPassword },
      });
      assert.equal(local.status, 200);
    } finally {
      await slapd.start();
    }
    const again = await s.request('POST', '/auth/login', {
      body: { username: 'carol', password: 'carol-directory-pw' },
    });
    assert.equal(again.status, 200);
  });
});
