import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { adminPassword } from '../../src/testing/control-plane.js';
import { startServerProcess, type ServerProcess } from '../../src/testing/server-process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'zenith-crash-'));
let server: ServerProcess | undefined;
after(async () => {
  await server?.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

async function api(
  base: string,
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<any> {
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return response.status === 204 ? undefined : response.json();
}

async function login(base: string): Promise<string> {
  return (
    await api(base, undefined, 'POST', '/auth/login', {
      username: 'admin',
      password: adminPassword,
    })
  ).token;
}

test('kill -9 in the middle of a burst of tasks, then a restart, leaves every task final, every VM once and the audit chain intact', async () => {
  server = await startServerProcess({ dataDir });
  let token = await login(server.url);
  const added = await api(server.url, token, 'POST', '/connections', {
    name: 'lab',
    type: 'simulated',
    settings: { timeScale: 0.3, hostsPerCluster: 3, vmsPerHost: 8 },
  });
  assert.equal(added.state, 'connected');
  const vms = (await api(server.url, token, 'GET', '/vms?limit=1000')).items as Array<{
    id: string;
    name: string;
    facts: Record<string, string>;
    computed: Record<string, string>;
  }>;
  const hosts = (await api(server.url, token, 'GET', '/hosts?limit=100')).items as Array<{
    id: string;
  }>;
  assert.equal(vms.length, 48);

  // A burst: every VM gets a power action, a third of them a migration queued behind it.
  const submitted: string[] = [];
  for (const [i, vm] of vms.entries()) {
    const action =
      vm.facts['power.state'] === 'stopped'
        ? 'start'
        : vm.facts['power.state'] === 'suspended'
          ? 'resume'
          : 'suspend';
    submitted.push((await api(server.url, token, 'POST', `/vms/${vm.id}/${action}`)).id);
    if (i % 3 === 0) {
      const target = hosts.find((h) => h.id !== vm.computed['location.hostId'])!;
      submitted.push(
        (await api(server.url, token, 'POST', `/vms/${vm.id}/migrate`, { targetHostId: target.id }))
          .id,
      );
    }
  }
  assert.ok(submitted.every((id) => typeof id === 'string' && id.startsWith('task_')));
  await new Promise((r) => setTimeout(r, 250));
  await server.kill('SIGKILL');

  const file = new Database(join(dataDir, 'zenith.db'), { readonly: true });
  const unfinished = file
    .prepare("select count(*) as n from tasks where state in ('queued', 'running')")
    .get() as { n: number };
  file.close();
  assert.ok(unfinished.n > 0, 'the kill really interrupted tasks');

  server = await startServerProcess({ dataDir });
  token = await login(server.url);
  let tasks: Array<{ id: string; state: string; error: { code: string } | null }> = [];
  for (let i = 0; i < 300; i++) {
    tasks = (await api(server.url, token, 'GET', '/tasks?limit=1000')).items;
    if (tasks.every((t) => ['succeeded', 'failed', 'cancelled'].includes(t.state))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(tasks.length, submitted.length);
  for (const task of tasks) {
    assert.ok(['succeeded', 'failed'].includes(task.state), `task ${task.id} ended ${task.state}`);
    if (task.state === 'failed') assert.match(task.error!.code, /^ZEN_/);
  }

  const after = (await api(server.url, token, 'GET', '/vms?limit=1000')).items as Array<{
    id: string;
    name: string;
    status: string;
    facts: Record<string, string>;
  }>;
  assert.equal(after.length, 48, 'no VM lost or doubled');
  assert.deepEqual(
    after.map((v) => v.id).sort(),
    vms.map((v) => v.id).sort(),
    'the same VMs, with the same ids',
  );
  assert.ok(after.every((v) => v.status === 'present'));

  // The inventory agrees with the hypervisor: a full re-read changes nothing.
  const before = JSON.stringify(after.map((v) => [v.id, v.facts['power.state']]));
  await api(server.url, token, 'POST', '/connections/lab/refresh');
  const reread = (await api(server.url, token, 'GET', '/vms?limit=1000')).items as Array<{
    id: string;
    facts: Record<string, string>;
  }>;
  assert.equal(JSON.stringify(reread.map((v) => [v.id, v.facts['power.state']])), before);

  const check = new Database(join(dataDir, 'zenith.db'), { readonly: true });
  const open = check
    .prepare(
      'select vm_id, count(*) as n from location_history where to_ts is null group by vm_id having n > 1',
    )
    .all();
  check.close();
  assert.deepEqual(open, [], 'every VM has exactly one open location interval');

  const verify = await api(server.url, token, 'POST', '/audit/verify');
  assert.equal(verify.ok, true, JSON.stringify(verify.firstBad));
});
