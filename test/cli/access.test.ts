import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminPassword } from '../../src/testing/control-plane.js';
import {
  cliRunner,
  startServerProcess,
  type ServerProcess,
} from '../../src/testing/server-process.js';

describe('groups, roles, bindings and access explain through the zenith command', () => {
  let server: ServerProcess;
  let dataDir: string;
  let zenith: ReturnType<typeof cliRunner>;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'zenith-access-cli-'));
    server = await startServerProcess({ dataDir });
    zenith = cliRunner(server.url);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
  });
  after(async () => {
    await server.kill();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('an operator bound on a group is explained as allowed, with the binding and the group', async () => {
    const run = async (args: string[]) => {
      const result = await zenith(args);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      return result.stdout;
    };
    const bob = await zenith(['users', 'create', 'bob', '--role', 'none'], {
      input: 'bob-password-1234\n',
    });
    assert.equal(bob.code, 0, bob.stderr);
    await run(['groups', 'create', 'ops']);
    await run(['groups', 'add', 'ops', 'bob']);
    await run(['roles', 'create', 'power-only', 'vm.power', 'inventory.read']);
    const created = await run(['bindings', 'create', 'ops', 'power-only']);
    const bindingId = /bind_[0-9A-Z]{26}/.exec(created)?.[0];
    assert.ok(bindingId, created);
    const allowed = await run(['access', 'explain', 'bob', 'vm.power']);
    assert.match(allowed, /ALLOWED/);
    assert.match(allowed, new RegExp(bindingId));
    const denied = await zenith(['access', 'explain', 'bob', 'vm.delete']);
    assert.equal(denied.code, 1);
    assert.match(denied.stdout, /DENIED/);
    assert.match(denied.stdout, /no role binding grants vm.delete/);
  });

  test('a binding with a condition on identity facts, and explain showing whether it held', async () => {
    const run = async (args: string[]) => {
      const result = await zenith(args);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      return result.stdout;
    };
    const carol = await zenith(['users', 'create', 'carol', '--role', 'none'], {
      input: 'carol-password-1234\n',
    });
    assert.equal(carol.code, 0, carol.stderr);
    const attributes = JSON.parse(await run(['users', 'set-attributes', 'carol', 'level=3']));
    assert.deepEqual(attributes.attributes, { level: '3' });
    await run(['roles', 'create', 'auditor', 'audit.read']);
    const bad = await zenith([
      'bindings',
      'create',
      'carol',
      'auditor',
      '--when',
      'subject.level =',
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /ZEN_POLICY_SYNTAX/);
    const created = await run([
      'bindings',
      'create',
      'carol',
      'auditor',
      '--when',
      "subject.level == '3'",
    ]);
    assert.match(created, /where subject\.level == '3'/);
    const allowed = await run(['access', 'explain', 'carol', 'audit.read']);
    assert.match(allowed, /ALLOWED/);
    assert.match(allowed, /subject\.level == '3' → held/);
    await run(['users', 'set-attributes', 'carol', 'level=']);
    const denied = await zenith(['access', 'explain', 'carol', 'audit.read']);
    assert.equal(denied.code, 1);
    assert.match(denied.stdout, /→ did not hold/);
    assert.match((await run(['bindings', 'list'])).toString(), /subject\.level == '3'/);
  });

  test('users passwd asks for the current password first, and ends the user’s other ways in', async () => {
    const dana = await zenith(['users', 'create', 'dana', '--role', 'viewer'], {
      input: 'dana-password-1234\n',
    });
    assert.equal(dana.code, 0, dana.stderr);
    const asDana = cliRunner(server.url);
    assert.equal(
      (await asDana(['login', '--user', 'dana'], { input: 'dana-password-1234\n' })).code,
      0,
    );
    const elsewhere = cliRunner(server.url);
    assert.equal(
      (await elsewhere(['login', '--user', 'dana'], { input: 'dana-password-1234\n' })).code,
      0,
    );
    // Piped: the current password on the first line, the new one on the second.
    const wrong = await asDana(['users', 'passwd'], {
      input: 'not-danas-password\ndana-password-5678\n',
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /ZEN_CURRENT_PASSWORD_WRONG/);
    const changed = await asDana(['users', 'passwd', 'dana'], {
      input: 'dana-password-1234\ndana-password-5678\n',
    });
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stderr, /other sessions ended/);
    assert.equal((await asDana(['vms'])).code, 0, 'the session that changed it stays');
    const ended = await elsewhere(['vms']);
    assert.equal(ended.code, 3, ended.stderr);
    // An administrator sets someone else's without theirs.
    const reset = await zenith(['users', 'passwd', 'dana'], { input: 'dana-password-9999\n' });
    assert.equal(reset.code, 0, reset.stderr);
    assert.equal((await asDana(['vms'])).code, 3);
  });
});
