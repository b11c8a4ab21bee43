/**
 * Authorization at scale, in memory as the server decides it: 10,000 users,
 * 1,000 groups (nested), 50,000 role bindings on scopes, 200,000 objects
 * (datacenter → cluster → host → VM, plus resource groups with selectors).
 * Reports the decision time (p50/p99, first decision of a user and later
 * ones) and the cost of filtering a 50,000-VM list by the caller's access.
 *
 *   node --import tsx bench/authz.ts [--decisions 20000] [--seed 7]
 */
import { parseArgs } from 'node:util';
import { AccessGraph, type RoleBinding } from '../src/services/identity/access-graph.js';
import { IdentityFacts } from '../src/services/identity/binding-conditions.js';
import { ObjectFacts } from '../src/services/policy/fact-sources.js';
import { rolePermissions, type RoleName } from '../src/services/identity/roles.js';
import { InventoryIndex } from '../src/services/inventory/inventory-index.js';
import type { ManagedObject, ObjectKind } from '../src/services/inventory/model.js';
import { scopeResolverOf } from '../src/services/inventory/scope-chain.js';

const { values } = parseArgs({
  options: {
    decisions: { type: 'string', default: '20000' },
    seed: { type: 'string', default: '7' },
  },
});

let state = Number(values.seed);
const random = () => {
  state = (state * 1103515245 + 12345) % 2 ** 31;
  return state / 2 ** 31;
};
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

function object(
  id: string,
  kind: ObjectKind,
  parentId: string | null,
  extra: Partial<ManagedObject> = {},
): ManagedObject {
  return {
    id,
    kind,
    name: id,
    parentId,
    connectionId: null,
    externalId: null,
    tags: [],
    facts: {},
    userFacts: {},
    computed: {},
    status: 'present',
    missingSince: null,
    createdAt: 0,
    updatedAt: 0,
    ...extra,
  };
}

// 10 datacenters, 100 clusters, 2,000 hosts, 197,870 VMs, 20 resource groups: 200,000 objects.
const index = new InventoryIndex();
const clusters: string[] = [];
const hosts: string[] = [];
const vms: string[] = [];
for (let d = 0; d < 10; d++) {
  index.put(object(`dc_${d}`, 'datacenter', null));
  for (let c = 0; c < 10; c++) {
    const cluster = `cl_${d}_${c}`;
    clusters.push(cluster);
    index.put(object(cluster, 'cluster', `dc_${d}`));
    for (let h = 0; h < 20; h++) {
      const host = `host_${d}_${c}_${h}`;
      hosts.push(host);
      index.put(object(host, 'host', cluster));
    }
  }
}
const vmCount = 200_000 - 10 - 100 - 2_000 - 20;
for (let v = 0; v < vmCount; v++) {
  const id = `vm_${v}`;
  vms.push(id);
  index.put(
    object(id, 'vm', hosts[v % hosts.length]!, {
      tags: [`team:${v % 50}`],
      userFacts: { 'user.costCenter': `cc${v % 10}` },
    }),
  );
}
const resourceGroups: string[] = [];
for (let r = 0; r < 20; r++) {
  const id = `rg_${r}`;
  resourceGroups.push(id);
  index.put(
    object(id, 'resourceGroup', null, { userFacts: { 'user.selector': `tags=team:${r}` } }),
  );
}

const graph = new AccessGraph(scopeResolverOf(index));
const predefined: RoleName[] = ['viewer', 'operator', 'admin'];
for (const name of predefined) graph.setRole(name, rolePermissions[name]);
graph.setRole('vm-power', ['inventory.read', 'vm.power']);

const users = Array.from({ length: 10_000 }, (_, i) => `usr_${i}`);
const groups = Array.from({ length: 1_000 }, (_, i) => `grp_${i}`);
// Groups nest: the first 100 are departments holding the other 900 teams.
for (let g = 100; g < groups.length; g++) graph.addMember(groups[g % 100]!, groups[g]!);
for (const user of users)
  for (let k = 0; k < 3; k++) graph.addMember(pick(groups.slice(100)), user);

const scopes = [...clusters, ...hosts, ...resourceGroups, ...vms.slice(0, 20_000)];
let bindings = 0;
const bind = (subjectId: string, subjectKind: RoleBinding['subjectKind']) => {
  const role = pick(['viewer', 'operator', 'vm-power', 'vm-power']);
  graph.addBinding({
    id: `bind_${bindings++}`,
    subjectId,
    subjectKind,
    role,
    scopeId: random() < 0.001 ? null : pick(scopes),
    createdBy: 'bench',
    createdAt: 0,
  });
};
for (let i = 0; i < 30_000; i++) bind(pick(users), 'user');
for (let i = 0; i < 20_000; i++) bind(pick(groups), 'group');

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const format = (ns: number) =>
  ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : `${(ns / 1e3).toFixed(1)} µs`;

function measure(label: string, run: () => void, times: number): void {
  const samples: number[] = [];
  for (let i = 0; i < times; i++) {
    const start = process.hrtime.bigint();
    run();
    samples.push(Number(process.hrtime.bigint() - start));
  }
  samples.sort((a, b) => a - b);
  console.log(
    `${label.padEnd(58)} p50 ${format(percentile(samples, 0.5)).padStart(10)}  p99 ${format(percentile(samples, 0.99)).padStart(10)}  (n=${times})`,
  );
}

console.log(
  `objects ${index.size}, users ${users.length}, groups ${groups.length}, bindings ${bindings}`,
);
const decisions = Number(values.decisions);
let allowed = 0;
// First decision of each user: its grants are gathered through its groups (then cached until a change).
let u = 0;
measure(
  'decision, first for the user (vm.power on a random VM)',
  () => {
    if (
      graph.decide({ id: users[u++ % users.length]!, role: 'none' }, 'vm.power', pick(vms)).allowed
    )
      allowed++;
  },
  Math.min(decisions, users.length),
);
measure(
  'decision, later (vm.power on a random VM)',
  () => {
    if (graph.decide({ id: pick(users), role: 'none' }, 'vm.power', pick(vms)).allowed) allowed++;
  },
  decisions,
);
console.log(`  (${allowed} of the decisions allowed)`);

const list = vms.slice(0, 50_000);
let visible = 0;
measure(
  'filter a 50,000-VM list by inventory.read',
  () => {
    const readable = graph.filter({ id: pick(users), role: 'none' }, 'inventory.read');
    visible = 0;
    for (const id of list) if (readable(id)) visible++;
  },
  30,
);
console.log(`  (last caller saw ${visible} of ${list.length})`);

// A binding with a condition over identity facts: every user in one group, granted vm-power on
// everything where its department is the VM's cost center (a tenth of the VMs each).
const departments = new Map(
  users.map((id, i) => [
    id,
    new IdentityFacts({ id, name: id, kind: 'user', role: 'none' }, { department: `cc${i % 10}` }),
  ]),
);
const conditional = new AccessGraph(scopeResolverOf(index), {
  subject: (id) => departments.get(id),
  object: (id) => {
    const found = index.get(id);
    return found ? new ObjectFacts(found) : undefined;
  },
});
conditional.setRole('vm-power', ['inventory.read', 'vm.power']);
for (const user of users) conditional.addMember('grp_staff', user);
conditional.addBinding({
  id: 'bind_conditional',
  subjectId: 'grp_staff',
  subjectKind: 'group',
  role: 'vm-power',
  scopeId: null,
  condition: 'subject.department == object.user.costCenter',
  createdBy: 'bench',
  createdAt: 0,
});
let conditionalAllowed = 0;
measure(
  'decision through a conditional binding (vm.power)',
  () => {
    if (conditional.decide({ id: pick(users), role: 'none' }, 'vm.power', pick(vms)).allowed)
      conditionalAllowed++;
  },
  decisions,
);
console.log(`  (${conditionalAllowed} of the decisions allowed)`);
measure(
  'filter a 50,000-VM list through a conditional binding',
  () => {
    const readable = conditional.filter({ id: pick(users), role: 'none' }, 'inventory.read');
    visible = 0;
    for (const id of list) if (readable(id)) visible++;
  },
  10,
);
console.log(`  (last caller saw ${visible} of ${list.length})`);
