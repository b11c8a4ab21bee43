/**
 * The permission matrix, generated from the server's own route table: every
 * API route is called by identities that hold its permission on the right
 * scope, on another scope only (with and without reading the right one), and
 * everywhere but without that permission, and the answer must allow or refuse
 * accordingly. Refusals tell nothing the caller may not read: an object it
 * may not see answers as one that does not exist (404), a 403 comes only
 * where it may read the object, and names no scope of its bindings. A new
 * route is covered the day it is added.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import type { RouteEntry } from '../../src/server/auth.js';
import { permissions, type Permission } from '../../src/services/identity/roles.js';

/** What reading datacenter A takes: its objects, and the tasks on them. */
const readPermissions: Permission[] = ['inventory.read', 'task.read', 'backup.read'];
import { newId } from '../../src/core/ids.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

interface Fixture {
  /** Datacenter A and B: the two scopes. */
  scopeA: string;
  scopeB: string;
  /** One object of each kind inside A, by kind. */
  inA: Record<string, string>;
  vmA: string;
  taskA: string;
  /** A backup of vmA (in the catalogue: a simulated VM has no disks to read). */
  backupA: string;
  /** A backup job scoped to vmA. */
  jobA: string;
  /** An image of the library on the host in A (a simulated host has no storage to scan). */
  imageA: string;
}

/** An id of the same form as `id` that names nothing. */
const missingLike = (id: string) => `${id.slice(0, -6)}ZZZZZZ`;

/** What a route names, filled with objects inside datacenter A (or ids like theirs that name nothing). */
function requestFor(
  route: RouteEntry,
  f: Fixture,
  options: { missing?: boolean } = {},
): { path: string; body?: Record<string, string> } {
  const scope = Array.isArray(route.scope) ? route.scope : [];
  const objectFor = (kind: string) => {
    const id =
      kind === 'task'
        ? f.taskA
        : kind === 'backup'
          ? f.backupA
          : kind === 'backupJob'
            ? f.jobA
            : kind === 'image'
              ? f.imageA
              : kind === 'any'
                ? f.vmA
                : f.inA[kind]!;
    return options.missing ? missingLike(id) : id;
  };
  const path = route.url.replace(/^\/api\/v1/, '').replace(/:(\w+)/g, (_all, name: string) => {
    const source = scope.find((s) => 'param' in s && s.param === name);
    // Parameters outside any scope name things that are not there: allowed means "not refused".
    return source ? objectFor(source.kind) : 'placeholder';
  });
  if (!['POST', 'PUT', 'PATCH'].includes(route.method)) return { path };
  const body: Record<string, string> = {};
  for (const source of scope) if ('body' in source) body[source.body] = objectFor(source.kind);
  return { path, body };
}

async function call(
  s: TestServer,
  method: string,
  path: string,
  token: string | undefined,
  body: unknown,
): Promise<{ status: number; text: string }> {
  const abort = new AbortController();
  const response = await fetch(`${s.baseUrl}/api/v1${path}`, {
    method,
    signal: abort.signal,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  // A stream (the event stream) is judged by its status alone.
  if (response.headers.get('content-type')?.includes('text/event-stream')) {
    abort.abort();
    return { status: response.status, text: '' };
  }
  return { status: response.status, text: await response.text() };
}

describe('permission matrix over every API route', () => {
  let s: TestServer;
  let f: Fixture;
  let routes: RouteEntry[];
  /** Per permission: a token factory for each kind of identity (fresh tokens: logout revokes its own). */
  const holders = new Map<
    Permission,
    { everywhere: string; onA: string; onB: string; onBReadsA: string; allButIt: string }
  >();
  let nobody: string;

  before(async () => {
    s = await startTestServer();
    const admin = await s.login();
    const added = await s.request('POST', '/connections', {
      token: admin,
      body: {
        name: 'lab',
        type: 'simulated',
        settings: {
          timeScale: 0,
          datacenters: 2,
          clustersPerDatacenter: 1,
          hostsPerCluster: 1,
          vmsPerHost: 2,
        },
      },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    const [scopeA, scopeB] = (await s.request('GET', '/datacenters', { token: admin })).body
      .items as [ApiAnswer, ApiAnswer];
    const groupA = await s.request('POST', '/resource-groups', {
      token: admin,
      body: { name: 'group-a', parentId: scopeA.id },
    });
    assert.equal(groupA.status, 201, JSON.stringify(groupA.body));
    // One object of each kind under datacenter A.
    const inA: Record<string, string> = {};
    const all = (await s.request('GET', '/objects?limit=1000', { token: admin })).body.items;
    for (const object of all as ApiAnswer[]) {
      const chain = s.plane.inventory.index.get(object.id);
      let cursor = chain;
      while (cursor && cursor.id !== scopeA.id)
        cursor = cursor.parentId ? s.plane.inventory.index.get(cursor.parentId) : undefined;
      if (cursor) inA[object.kind] ??= object.id;
    }
    const vmA = inA.vm!;
    const task = await s.request('POST', `/vms/${vmA}/suspend`, { token: admin });
    assert.equal(task.status, 202, JSON.stringify(task.body));
    await s.waitForTask(admin, task.body.id);
    const backupA = newId('backup');
    await s.plane.backups.catalogue.add({
      format: 1,
      id: backupA,
      repositoryId: newId('backupRepository'),
      chunkSize: 4 << 20,
      vm: { id: vmA, name: 'vm-a', uuid: null },
      takenAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      parent: null,
      job: null,
      disks: [],
      checksum: '',
    });
    // A job on vmA: a PATCH naming vmA as its scope (as the matrix's bodies do) does not move it.
    await s.plane.backups.addRepository({
      name: 'matrix',
      path: join(s.dataDir, 'backups', 'matrix'),
    });
    const adminIdentity = await s.plane.identities.get('admin');
    const jobA = (
      await s.plane.backupJobs.create(
        { name: 'job-a', repository: 'matrix', scope: vmA },
        { id: adminIdentity.id, role: adminIdentity.role, name: adminIdentity.name },
      )
    ).id;
    const imageA = newId('image');
    const now = Date.now();
    await s.plane.store.db
      .insertInto('images')
      .values({
        id: imageA,
        host_id: inA.host!,
        connection_id: added.body.id,
        path: '/images/a.qcow2',
        root: '/images',
        name: 'a.qcow2',
        format: 'qcow2',
        kind: 'disk',
        virtual_bytes: 1 << 30,
        file_bytes: 1 << 20,
        allocated_bytes: 1 << 20,
        backing_file: null,
        label: null,
        problem: null,
        link_target: null,
        modified_at: now,
        owner_vm_uuid: null,
        owner_vm_name: null,
        owner_defined: 0,
        status: 'present',
        missing_since: null,
        first_seen_at: now,
        scanned_at: now,
      })
      .execute();
    f = {
      scopeA: scopeA.id,
      scopeB: scopeB.id,
      inA,
      vmA,
      taskA: task.body.id,
      backupA,
      jobA,
      imageA,
    };
    routes = s.app.routeTable.filter((r) => r.method !== 'HEAD');

    const { identities, access } = s.plane;
    const identity = async (name: string) =>
      (await identities.createServiceIdentity({ name, role: 'none' })).id;
    const needed = new Set(
      routes.map((r) => r.permission).filter((p): p is Permission => p !== null && p !== 'self'),
    );
    for (const permission of needed) {
      const slug = permission.replace('.', '-');
      await access.createRole({ name: `only-${slug}`, permissions: [permission] });
      await access.createRole({
        name: `all-but-${slug}`,
        permissions: permissions.filter((p) => p !== permission),
      });
      // Reads what datacenter A holds (objects and tasks), without the permission under test.
      await access.createRole({
        name: `reads-${slug}`,
        permissions: readPermissions.filter((p) => p !== permission),
      });
      const ids = {
        everywhere: await identity(`${slug}-everywhere`),
        onA: await identity(`${slug}-on-a`),
        onB: await identity(`${slug}-on-b`),
        onBReadsA: await identity(`${slug}-on-b-reads-a`),
        allButIt: await identity(`${slug}-all-but`),
      };
      await access.createBinding({ subject: ids.everywhere, role: `only-${slug}` }, 'test');
      await access.createBinding(
        { subject: ids.onA, role: `only-${slug}`, scope: f.scopeA },
        'test',
      );
      await access.createBinding(
        { subject: ids.onB, role: `only-${slug}`, scope: f.scopeB },
        'test',
      );
      await access.createBinding(
        { subject: ids.onBReadsA, role: `only-${slug}`, scope: f.scopeB },
        'test',
      );
      await access.createBinding(
        { subject: ids.onBReadsA, role: `reads-${slug}`, scope: f.scopeA },
        'test',
      );
      await access.createBinding({ subject: ids.allButIt, role: `all-but-${slug}` }, 'test');
      holders.set(permission, ids);
    }
    nobody = await identity('nobody');
  });
  after(async () => s.close());

  const tokenOf = async (identityId: string) =>
    (await s.plane.sessions.createToken(identityId, 'matrix')).token;

  test('every route is in the table and declares how it is authorized', () => {
    assert.ok(routes.length > 60, `only ${routes.length} routes`);
    for (const route of routes) assert.ok(route.public || route.permission, route.url);
  });

  test('each route allows exactly the identities whose bindings reach what it touches', async () => {
    // Destructive routes last, so that what the others name still exists; of those, the deeper
    // paths first (a group's member before the group).
    const depth = (url: string) => url.split('/').length;
    const ordered = [...routes].sort(
      (a, b) =>
        Number(a.method === 'DELETE') - Number(b.method === 'DELETE') ||
        (a.method === 'DELETE' && b.method === 'DELETE' ? depth(b.url) - depth(a.url) : 0),
    );
    const failures: string[] = [];
    const expect = (label: string, ok: boolean, status: number, text: string) => {
      if (!ok) failures.push(`${label}: ${status} ${text.slice(0, 160)}`);
    };
    const refused = (status: number, text: string) =>
      status === 403 && text.includes('ZEN_FORBIDDEN');
    const allowed = (status: number) => status !== 401 && status !== 403 && status < 500;
    let checked = 0;
    for (const route of ordered) {
      if (route.public) continue;
      const { path, body } = requestFor(route, f);
      const scope = Array.isArray(route.scope) ? route.scope : [];
      const name = `${route.method} ${route.url}`;
      const anonymous = await call(s, route.method, path, undefined, body);
      expect(`${name} anonymous`, anonymous.status === 401, anonymous.status, anonymous.text);
      if (route.permission === 'self') {
        const any = await call(s, route.method, path, await tokenOf(nobody), body);
        expect(`${name} any identity`, allowed(any.status), any.status, any.text);
        checked++;
        continue;
      }
      const ids = holders.get(route.permission!)!;
      const without = await call(s, route.method, path, await tokenOf(ids.allButIt), body);
      expect(
        `${name} everything but ${route.permission}`,
        refused(without.status, without.text),
        without.status,
        without.text,
      );
      const offScope = await call(s, route.method, path, await tokenOf(ids.onB), body);
      if (route.scope === 'filtered')
        // A list answers, but with nothing from datacenter A.
        expect(
          `${name} on datacenter B only`,
          offScope.status === 200 && !offScope.text.includes(f.vmA),
          offScope.status,
          offScope.text,
        );
      else if (route.scope === 'global')
        expect(
          `${name} on datacenter B only`,
          refused(offScope.status, offScope.text),
          offScope.status,
          offScope.text,
        );
      else {
        // Objects it may not read do not exist for it: the same answer as for ids naming nothing.
        const missing = requestFor(route, f, { missing: true });
        const none = await call(
          s,
          route.method,
          missing.path,
          await tokenOf(ids.onB),
          missing.body,
        );
        const named = [...path.split('/'), ...Object.values(body ?? {})];
        const normal = (text: string) => {
          for (const id of named.filter((part) => /^[a-z]+_[0-9A-Z]{26}$/.test(part)))
            text = text.replaceAll(id, 'ID').replaceAll(missingLike(id), 'ID');
          return text;
        };
        expect(
          `${name} on datacenter B only (as for nothing there: ${none.status} ${none.text.slice(0, 120)})`,
          offScope.status === 404 &&
            none.status === 404 &&
            normal(offScope.text) === normal(none.text),
          offScope.status,
          offScope.text,
        );
        // Reading what it names, but holding the permission elsewhere only: 403, naming no scope.
        // Without a reading permission besides the one under test, it still sees nothing.
        const readsOthers = !(
          route.permission === 'inventory.read' ||
          (route.permission === 'task.read' && scope.some((source) => source.kind === 'task')) ||
          (route.permission === 'backup.read' &&
            scope.some((source) => source.kind === 'backup' || source.kind === 'backupJob'))
        );
        const reader = await call(s, route.method, path, await tokenOf(ids.onBReadsA), body);
        expect(
          `${name} on datacenter B, reading A`,
          readsOthers
            ? refused(reader.status, reader.text) && !reader.text.includes(f.scopeB)
            : reader.status === 404,
          reader.status,
          reader.text,
        );
      }
      const onScope = await call(s, route.method, path, await tokenOf(ids.onA), body);
      if (route.scope === 'global')
        // Bound on a subtree is not bound on everything.
        expect(
          `${name} on datacenter A only`,
          refused(onScope.status, onScope.text),
          onScope.status,
          onScope.text,
        );
      else expect(`${name} on datacenter A`, allowed(onScope.status), onScope.status, onScope.text);
      const everywhere = await call(s, route.method, path, await tokenOf(ids.everywhere), body);
      expect(`${name} everywhere`, allowed(everywhere.status), everywhere.status, everywhere.text);
      checked++;
    }
    assert.deepEqual(failures, []);
    assert.equal(checked, routes.filter((r) => !r.public).length);
  });
});
