/**
 * No identity widens access through its own requests. Random sequences of
 * requests by identities with scoped, conditional and delegated bindings —
 * making and editing resource groups (selectors, members), writing facts and
 * tags, creating VMs (with disk files, on QEMU hosts sharing a storage root)
 * and enrolling agents that report VMs — against a real server. After every
 * request the test works out who may do what on which object, and holds:
 *
 * 1. every (identity, object, permission) that became allowed is explained by
 *    an identity manager: the requester managed access to that object
 *    (identity.manage on it, or on where a new object was made), or the grant
 *    comes through the hierarchy alone (an unconditional binding on the object
 *    or an ancestor: a VM made on a host one operates);
 * 2. no VM uses another VM's disk, as a disk, base image, kernel or initrd;
 * 3. no VM changed connections (no request here moves one).
 *
 * It finds the security review's findings 1, 2, 4, 5 and 8 when their fixes
 * are taken out (docs/identity.md, "Data that decides access").
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { DiscoveredVm } from '../../src/hypervisors/driver.js';
import type { Permission } from '../../src/services/identity/roles.js';
import type { ManagedObject } from '../../src/services/inventory/model.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { ensureGuestImage } from '../../src/testing/guest-image.js';
import { startScriptedAgent, type ScriptedAgent } from '../../src/testing/scripted-agent.js';
import { until } from '../../src/testing/wait.js';

const MiB = 1024 * 1024;
const actors = ['olga', 'dana', 'sam'] as const;
type Actor = (typeof actors)[number];
const watched = ['olga', 'dana', 'sam', 'tina'] as const;
const permissions: Permission[] = [
  'inventory.read',
  'inventory.write',
  'vm.power',
  'identity.manage',
];

/** What a random request does; object choices are indexes, resolved against the inventory at the time. */
type Action =
  | {
      kind: 'createGroup';
      actor: Actor;
      parent: 'top' | 'c1' | 'c2' | 'delegated';
      selector: string | null;
      members: number[];
      tags: string[];
    }
  | {
      kind: 'setFacts';
      actor: Actor;
      target: 'group' | 'vm';
      object: number;
      facts: Record<string, unknown>;
    }
  | { kind: 'tag'; actor: Actor; object: number; add: string[]; remove: string[] }
  | { kind: 'addMember'; actor: Actor; group: number; object: number }
  | { kind: 'deleteGroup'; actor: Actor; group: number }
  | {
      kind: 'createVm';
      actor: Actor;
      host: 'c1' | 'c2';
      tags: string[];
      facts: Record<string, unknown>;
    }
  | { kind: 'attachDisk'; actor: Actor; victim: number; how: 'disk' | 'base' | 'kernel' | 'initrd' }
  | { kind: 'claimUuid'; victim: number };

const selectors = fc.constantFrom(null, 'kind=vm', 'tags=team:blue', 'user.costCenter=eng');
const tagLists = fc.subarray(['team:blue', 'misc']);
const pick = fc.nat({ max: 1000 });
const actor = fc.constantFrom(...actors);
// Weighted towards requests that change what bindings reach (selectors, members, facts, tags).
const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('createGroup' as const),
      actor,
      parent: fc.constantFrom('top' as const, 'c1' as const, 'c2' as const, 'delegated' as const),
      selector: selectors,
      members: fc.array(pick, { maxLength: 2 }),
      tags: tagLists,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('setFacts' as const),
      actor,
      target: fc.constant('group' as const),
      object: pick,
      facts: fc.oneof(
        fc.constantFrom<Record<string, unknown>>(
          { 'user.selector': 'kind=vm' },
          { 'user.selector': 'tags=team:blue' },
          { 'user.selector': null },
        ),
        pick.map((member) => ({ 'user.members': [member] })),
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('setFacts' as const),
      actor,
      target: fc.constant('vm' as const),
      object: pick,
      facts: fc.constantFrom<Record<string, unknown>>(
        { 'user.costCenter': 'eng' },
        { 'user.costCenter': null },
        { 'user.note': 'checked' },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('tag' as const),
      actor,
      object: pick,
      add: tagLists,
      remove: tagLists,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('addMember' as const),
      actor,
      group: pick,
      object: pick,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('deleteGroup' as const), actor, group: pick }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('createVm' as const),
      actor,
      host: fc.constantFrom('c1' as const, 'c2' as const),
      tags: tagLists,
      facts: fc.constantFrom<Record<string, unknown>>({}, { 'user.costCenter': 'eng' }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('attachDisk' as const),
      actor,
      victim: pick,
      how: fc.constantFrom('disk' as const, 'base' as const, 'kernel' as const, 'initrd' as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('claimUuid' as const), victim: pick }) },
);

/** One fresh world per run: a simulated fleet, two QEMU hosts on one storage root, identities. */
class World {
  readonly tokens = new Map<string, string>();
  readonly identities = new Map<string, { id: string; role: 'none' }>();
  readonly agents: ScriptedAgent[] = [];
  readonly root = mkdtempSync(join(tmpdir(), 'zenith-escalation-'));
  s!: TestServer;
  admin!: string;
  ids!: Record<
    'c1' | 'c2' | 'c1Host' | 'c2Host' | 'qemuA' | 'qemuB' | 'delegated' | 'blue',
    string
  >;
  step = 0;

  constructor(private readonly kernel: string) {}

  async start(): Promise<void> {
    this.s = await startTestServer();
    const s = this.s;
    this.admin = await s.login();
    await s.addSimulatedFleet(this.admin, {
      timeScale: 0,
      clustersPerDatacenter: 2,
      hostsPerCluster: 1,
      vmsPerHost: 2,
    });
    for (const name of ['qemu-a', 'qemu-b'])
      await this.ok('POST', '/connections', {
        name,
        type: 'qemu',
        settings: {
          storageRoots: [this.root, dirname(this.kernel)],
          accelerator: 'tcg',
          hostName: name,
        },
      });
    const [c1, c2] = (await this.ok('GET', '/clusters?sort=name')).items as ApiAnswer[];
    const hostOf = async (cluster: ApiAnswer) =>
      ((await this.ok('GET', `/objects/${cluster.id}/children`)).items as ApiAnswer[])[0]!
        .id as string;
    const delegated = await this.ok('POST', '/resource-groups', { name: 'delegated' });
    const blue = await this.ok('POST', '/resource-groups', {
      name: 'team-blue',
      facts: { 'user.selector': 'tags=team:blue' },
    });
    this.ids = {
      c1: c1!.id,
      c2: c2!.id,
      c1Host: await hostOf(c1),
      c2Host: await hostOf(c2),
      qemuA: (await this.ok('GET', '/hosts/qemu-a')).id,
      qemuB: (await this.ok('GET', '/hosts/qemu-b')).id,
      delegated: delegated.id,
      blue: blue.id,
    };
    // A VM with a disk on the second QEMU host: the one someone may try to reach through its file.
    const victim = await this.ok('POST', '/vms', {
      name: 'victim',
      hostId: this.ids.qemuB,
      cpus: 1,
      memoryBytes: 64 * MiB,
      diskBytes: 2 * MiB,
    });
    assert.equal((await s.waitForTask(this.admin, victim.id)).state, 'succeeded');
    for (const [name, perms] of [
      ['operator-here', ['inventory.read', 'inventory.write', 'vm.power', 'vm.create']],
      ['reader', ['inventory.read']],
      ['power', ['inventory.read', 'vm.power']],
      ['access-admin', ['inventory.read', 'inventory.write', 'identity.manage']],
      ['fact-writer', ['inventory.read', 'inventory.write']],
    ] as const)
      await this.ok('POST', '/roles', { name, permissions: perms });
    for (const name of watched) {
      const user = await s.plane.identities.createUser({
        name,
        role: 'none',
        password: `${name}-password-12`,
      });
      this.identities.set(name, { id: user.id, role: 'none' });
      this.tokens.set(name, await s.login(name, `${name}-password-12`));
    }
    await this.ok('PATCH', '/users/sam', { attributes: { department: 'eng' } });
    const bind = (subject: string, role: string, scope?: string, condition?: string) =>
      this.ok('POST', '/role-bindings', {
        subject,
        role,
        ...(scope ? { scope } : {}),
        ...(condition ? { condition } : {}),
      });
    // Scoped: an operator of cluster 1 and of the first QEMU host.
    await bind('olga', 'operator-here', this.ids.c1);
    await bind('olga', 'operator-here', this.ids.qemuA);
    // Delegated: manages access to one resource group, reads everything.
    await bind('dana', 'access-admin', this.ids.delegated);
    await bind('dana', 'reader');
    // Conditional: power wherever the object's cost center is his department; writes facts in cluster 1.
    await bind('sam', 'power', undefined, 'subject.department == object.user.costCenter');
    await bind('sam', 'fact-writer', this.ids.c1);
    // Power over whatever team-blue selects.
    await bind('tina', 'power', this.ids.blue);
  }

  async close(): Promise<void> {
    for (const agent of this.agents) await agent.close();
    await this.s.close();
    rmSync(this.root, { recursive: true, force: true });
  }

  async ok(method: string, path: string, body?: unknown): Promise<ApiAnswer> {
    const answer = await this.s.request(method, path, { token: this.admin, body });
    assert.ok(
      answer.status < 300,
      `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`,
    );
    return answer.body;
  }

  objects(): ManagedObject[] {
    return (['datacenter', 'cluster', 'host', 'vm', 'resourceGroup'] as const).flatMap((kind) =>
      this.s.plane.inventory.index.ofKind(kind).filter((o) => o.status === 'present'),
    );
  }

  nth<T>(items: T[], index: number): T | undefined {
    return items.length === 0 ? undefined : items[index % items.length];
  }

  /** Who may do what where: every watched identity × object × permission that is allowed. */
  allowed(): Set<string> {
    const out = new Set<string>();
    for (const [name, asker] of this.identities)
      for (const object of this.objects())
        for (const permission of permissions)
          if (this.s.plane.access.decide(asker, permission, object.id).allowed)
            out.add(`${name}\u0000${object.id}\u0000${permission}`);
    return out;
  }

  /** Does the identity reach the object through an unconditional binding on it or an ancestor? */
  async structural(name: string, objectId: string, permission: Permission): Promise<boolean> {
    const graph = this.s.plane.access.graph;
    const lineage = new Set<string>();
    for (let id: string | null = objectId; id;) {
      lineage.add(id);
      id = this.s.plane.inventory.index.get(id)?.parentId ?? null;
    }
    const asker = this.identities.get(name)!;
    return graph
      .bindingsOf(asker)
      .some(
        ({ binding }) =>
          !binding.condition &&
          (binding.scopeId === null || lineage.has(binding.scopeId)) &&
          (graph.rolePermissions(binding.role)?.has(permission) ?? false),
      );
  }

  /** Runs one random request as its actor; refusals are fine, only what succeeds is judged. */
  async perform(step: Action): Promise<string> {
    const s = this.s;
    const token = step.kind === 'claimUuid' ? this.admin : this.tokens.get(step.actor)!;
    const objects = this.objects();
    const groups = objects.filter((o) => o.kind === 'resourceGroup');
    const vmsWithDisks = this.qemuVms().filter((vm) => vm.disks.length > 0);
    const n = ++this.step;
    switch (step.kind) {
      case 'createGroup': {
        const parentId = {
          top: undefined,
          c1: this.ids.c1,
          c2: this.ids.c2,
          delegated: this.ids.delegated,
        }[step.parent];
        const facts: Record<string, unknown> = {};
        if (step.selector) facts['user.selector'] = step.selector;
        const members = step.members.flatMap((i) => this.nth(objects, i)?.id ?? []);
        if (members.length > 0) facts['user.members'] = [...new Set(members)];
        const answer = await s.request('POST', '/resource-groups', {
          token,
          body: { name: `g-${n}`, ...(parentId ? { parentId } : {}), facts, tags: step.tags },
        });
        return `createGroup under ${step.parent} ${JSON.stringify(facts)} tags=${step.tags.join(',')} → ${answer.status}`;
      }
      case 'setFacts':
      case 'tag': {
        const candidates =
          step.kind === 'setFacts'
            ? objects.filter((o) => o.kind === (step.target === 'group' ? 'resourceGroup' : 'vm'))
            : objects;
        const object = this.nth(candidates, step.object);
        if (!object) return 'no object';
        const facts =
          step.kind === 'setFacts' && 'user.members' in step.facts
            ? {
                'user.members': [
                  this.nth(objects, (step.facts['user.members'] as number[])[0]!)!.id,
                ],
              }
            : step.kind === 'setFacts'
              ? step.facts
              : {};
        const body =
          step.kind === 'setFacts' ? { facts } : { addTags: step.add, removeTags: step.remove };
        const answer = await s.request('PATCH', `/objects/${object.id}`, { token, body });
        return `${step.kind} ${object.kind} ${object.name} ${JSON.stringify(body)} → ${answer.status}`;
      }
      case 'addMember': {
        const group = this.nth(groups, step.group);
        const object = this.nth(objects, step.object);
        if (!group || !object) return 'nothing to add';
        const answer = await s.request('POST', `/resource-groups/${group.id}/members`, {
          token,
          body: { object: object.id },
        });
        return `addMember ${object.kind} ${object.name} to ${group.name} → ${answer.status}`;
      }
      case 'deleteGroup': {
        const group = this.nth(groups, step.group);
        if (!group) return 'no group';
        const answer = await s.request('DELETE', `/resource-groups/${group.id}`, { token });
        return `deleteGroup ${group.name} → ${answer.status}`;
      }
      case 'createVm': {
        const hostId = step.host === 'c1' ? this.ids.c1Host : this.ids.c2Host;
        const answer = await s.request('POST', '/vms', {
          token,
          body: {
            name: `vm-${n}`,
            hostId,
            cpus: 1,
            memoryBytes: 64 * MiB,
            diskBytes: 0,
            tags: step.tags,
            facts: step.facts,
          },
        });
        if (answer.status === 202) await s.waitForTask(this.admin, answer.body.id);
        return `createVm on ${step.host} tags=${step.tags.join(',')} ${JSON.stringify(step.facts)} → ${answer.status}`;
      }
      case 'attachDisk': {
        const victim = this.nth(vmsWithDisks, step.victim);
        if (!victim) return 'no disk';
        const file = victim.disks[0]!;
        const options =
          step.how === 'disk'
            ? { disks: [{ file }], kernel: this.kernel }
            : step.how === 'base'
              ? { baseImage: file, kernel: this.kernel }
              : step.how === 'kernel'
                ? { kernel: file }
                : { kernel: this.kernel, initrd: file };
        const answer = await s.request('POST', '/vms', {
          token,
          body: {
            name: `thief-${n}`,
            hostId: this.ids.qemuA,
            cpus: 1,
            memoryBytes: 64 * MiB,
            diskBytes: 0,
            options,
          },
        });
        const task = answer.status === 202 ? await s.waitForTask(this.admin, answer.body.id) : null;
        return `attachDisk ${file} of ${victim.name} as ${step.how} → ${answer.status} ${task?.state ?? ''}`;
      }
      case 'claimUuid': {
        const victims = this.s.plane.inventory.index
          .ofKind('vm')
          .filter((vm) => typeof vm.facts['vm.uuid'] === 'string' && vm.status === 'present');
        const victim = this.nth(victims, step.victim);
        if (!victim) return 'no UUID';
        const hostname = `rogue-${n}.lab`;
        const stolen: DiscoveredVm = {
          kind: 'vm',
          externalId: `stolen-${n}`,
          name: `stolen-${n}`,
          parent: { kind: 'host', externalId: hostname },
          hostExternalId: hostname,
          powerState: 'stopped',
          facts: { 'vm.uuid': victim.facts['vm.uuid'] as string },
        };
        const agent = await startScriptedAgent({
          server: s.baseUrl,
          adminToken: this.admin,
          hostname,
          snapshot: {
            objects: [
              { kind: 'host', externalId: hostname, name: hostname, parent: null, facts: {} },
              stolen,
            ],
          },
        });
        this.agents.push(agent);
        // Its report is in once its connection has discovered (whatever became of it).
        await until(`${hostname} discovered`, async () =>
          agent.calls.some((c) => c.method === 'discover') &&
          this.s.plane.inventory.index.ofKind('host').some((h) => h.name === hostname)
            ? true
            : undefined,
        );
        return `claimUuid of ${victim.name}`;
      }
    }
  }

  /** QEMU VMs as their hosts keep them: disk files and boot files, from each VM's record. */
  qemuVms(): Array<{ name: string; disks: string[]; reads: string[] }> {
    const found: Array<{ name: string; disks: string[]; reads: string[] }> = [];
    const connections = join(this.s.dataDir, 'connections');
    for (const connection of existsSync(connections) ? readdirSync(connections) : []) {
      const vmsDir = join(connections, connection, 'vms');
      for (const id of existsSync(vmsDir) ? readdirSync(vmsDir) : []) {
        const file = join(vmsDir, id, 'vm.json');
        if (!existsSync(file)) continue;
        const spec = (
          JSON.parse(readFileSync(file, 'utf8')) as {
            spec: {
              name: string;
              disks: Array<{ file: string; backingFile?: string }>;
              boot: { kernel?: string; initrd?: string };
            };
          }
        ).spec;
        found.push({
          name: spec.name,
          disks: spec.disks.map((d) => d.file),
          reads: [
            ...spec.disks.flatMap((d) => d.backingFile ?? []),
            ...(spec.boot.kernel ? [spec.boot.kernel] : []),
            ...(spec.boot.initrd ? [spec.boot.initrd] : []),
          ],
        });
      }
    }
    return found;
  }
}

describe('no identity widens access through its own requests', () => {
  let kernel: string;
  before(async () => {
    kernel = (await ensureGuestImage()).kernel;
  });

  test('random sequences of requests by scoped, conditional and delegated identities', async () => {
    let runs = 0;
    const result = await fc.check(
      fc.asyncProperty(fc.array(action, { minLength: 4, maxLength: 14 }), async (steps) => {
        runs++;
        const world = new World(kernel);
        await world.start();
        try {
          const connectionOf = new Map(
            world.s.plane.inventory.index.ofKind('vm').map((vm) => [vm.id, vm.connectionId]),
          );
          const trail: string[] = [];
          for (const step of steps) {
            const before = world.allowed();
            const managedBefore = (objectId: string | null) =>
              step.kind !== 'claimUuid' &&
              world.s.plane.access.decide(
                world.identities.get(step.actor)!,
                'identity.manage',
                objectId,
              ).allowed;
            const known = new Map(world.objects().map((o) => [o.id, o.parentId]));
            const managesEverything = managedBefore(null);
            const manages = new Map(
              [...known.keys(), ...known.values()].flatMap((id) =>
                id === null ? [] : [[id, managedBefore(id)] as const],
              ),
            );
            trail.push(
              `${step.kind === 'claimUuid' ? 'agent' : step.actor}: ${await world.perform(step)}`,
            );
            // 1. Whatever became allowed, an identity manager allowed.
            for (const entry of world.allowed()) {
              if (before.has(entry)) continue;
              const [name, objectId, permission] = entry.split('\u0000') as [
                string,
                string,
                Permission,
              ];
              const object = world.s.plane.inventory.index.get(objectId)!;
              const managed = known.has(objectId)
                ? manages.get(objectId) === true
                : object.parentId === null
                  ? managesEverything
                  : manages.get(object.parentId) === true;
              if (managed || (await world.structural(name, objectId, permission))) continue;
              assert.fail(
                `${name} may now ${permission} on ${object.kind} ${object.name}, which no identity manager allowed.\nRequests:\n  ${trail.join('\n  ')}`,
              );
            }
            // 2. Every disk is its own VM's only.
            const vms = world.qemuVms();
            for (const vm of vms)
              for (const other of vms)
                if (other !== vm)
                  for (const file of [...other.disks, ...other.reads])
                    assert.ok(
                      !vm.disks.includes(file),
                      `${other.name} uses ${file}, a disk of ${vm.name}.\nRequests:\n  ${trail.join('\n  ')}`,
                    );
            // 3. No VM changed connections.
            for (const [id, connectionId] of connectionOf)
              assert.equal(
                world.s.plane.inventory.index.get(id)?.connectionId,
                connectionId,
                `${id} moved to another connection.\nRequests:\n  ${trail.join('\n  ')}`,
              );
          }
        } finally {
          await world.close();
        }
      }),
      { numRuns: Number(process.env.ZENITH_ESCALATION_RUNS ?? 12), endOnFailure: true },
    );
    // The violation itself, with the requests that led to it (fast-check's own error names only the input).
    if (result.failed)
      assert.fail(
        `${(result.errorInstance as Error | null)?.message ?? 'the property failed'}\n(fast-check seed ${result.seed}, after ${result.numRuns} run(s))`,
      );
    assert.equal(runs, result.numRuns);
  });
});
