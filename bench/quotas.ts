/**
 * The cost of quota enforcement and of the effective-access report, through
 * the services (no HTTP), on SQLite and PostgreSQL: a group owning N VMs
 * under a parent group, both with quotas; the time to submit a VM creation
 * (validation, placement-free, the quota check under row locks, the task
 * and its audit record) with and without a quota in force, and the
 * effective-access report for U users in nested groups.
 *
 *   node --import tsx bench/quotas.ts [--vms 5000] [--users 1000] [--creates 200]
 *   (PostgreSQL: run under `eval "$(node --import tsx src/testing/postgres-cli.ts start)"`)
 */
import { parseArgs } from 'node:util';
import { startTestPlane, storeKinds } from '../src/testing/control-plane.js';

const { values } = parseArgs({
  options: {
    vms: { type: 'string', default: '5000' },
    users: { type: 'string', default: '1000' },
    creates: { type: 'string', default: '200' },
  },
});
const vmCount = Number(values.vms);
const userCount = Number(values.users);
const creates = Number(values.creates);

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

for (const store of storeKinds) {
  const t = await startTestPlane({ store });
  const { plane } = t;
  const hostsPerCluster = 10;
  await plane.connections.add(
    {
      name: 'lab',
      type: 'simulated',
      settings: {
        timeScale: 0,
        clustersPerDatacenter: 1,
        hostsPerCluster,
        vmsPerHost: Math.ceil(vmCount / hostsPerCluster),
      },
    },
    { waitForSync: true },
  );
  const parent = await plane.access.createGroup({ name: 'department' });
  const team = await plane.access.createGroup({ name: 'team' });
  await plane.access.addMember(parent.id, team.id);
  const creator = await plane.identities.createUser({
    name: 'creator',
    role: 'operator',
    password: 'creator-password-long',
  });
  await plane.access.addMember(team.id, creator.id);
  // Every VM of the fleet is owned by the team.
  const vms = plane.inventory.index.ofKind('vm');
  for (let i = 0; i < vms.length; i += 500)
    await plane.store.db
      .insertInto('vm_ownership')
      .values(
        vms.slice(i, i + 500).map((vm) => ({
          vm_id: vm.id,
          owner: 'creator',
          group_name: 'team',
          cost_center: 'unassigned',
          from_ts: 0,
          to_ts: null,
          changed_by: 'bench',
        })),
      )
      .execute();
  const host = plane.inventory.index.ofKind('host')[0]!;
  const actor = { id: creator.id, kind: 'user', name: 'creator' };
  const submit = async (label: string) => {
    const times: number[] = [];
    for (let i = 0; i < creates; i++) {
      const started = performance.now();
      await plane.vmCreation.request(
        { name: `${label}-${i}`, hostId: host.id, cpus: 1, memoryBytes: 2 ** 24, diskBytes: 0 },
        actor,
      );
      times.push(performance.now() - started);
    }
    // Let the creations finish, so that the next round counts their VMs as used.
    for (;;) {
      const open = await plane.store.db
        .selectFrom('tasks')
        .select('id')
        .where('state', 'in', ['queued', 'running'])
        .executeTakeFirst();
      if (!open) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return times.sort((a, b) => a - b);
  };
  const without = await submit('free');
  await plane.quotas.set(parent.id, { vms: 10 ** 9 }, 'bench');
  await plane.quotas.set(team.id, { vcpus: 10 ** 9, memoryBytes: 2 ** 50 }, 'bench');
  const withQuota = await submit('quota');
  const view = await plane.quotas.get(team.id);
  const reads: number[] = [];
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    await plane.quotas.get(team.id);
    reads.push(performance.now() - started);
  }
  reads.sort((a, b) => a - b);

  for (let g = 0; g < 50; g++) await plane.access.createGroup({ name: `dept-${g}` });
  for (let u = 0; u < userCount; u++) {
    const user = await plane.identities.createServiceIdentity({ name: `user-${u}`, role: 'none' });
    await plane.store.db
      .insertInto('group_members')
      .values({
        group_id: (await plane.access.getGroup(`dept-${u % 50}`)).id,
        member_id: user.id,
        member_kind: 'service',
        added_at: 0,
      })
      .execute();
  }
  for (let g = 0; g < 50; g++)
    await plane.access.createBinding(
      { subject: `dept-${g}`, role: 'operator', scope: host.id },
      'bench',
    );
  const started = performance.now();
  const rows = await plane.accessReports.effectiveAccess();
  const reportMs = performance.now() - started;

  console.log(
    `${store}: ${view.used.vms} VMs owned by the group; submit p50/p99 without quota ${percentile(without, 50).toFixed(2)}/${percentile(without, 99).toFixed(2)} ms, with quotas on the group and its parent ${percentile(withQuota, 50).toFixed(2)}/${percentile(withQuota, 99).toFixed(2)} ms; reading the quota (usage derived) p50 ${percentile(reads, 50).toFixed(2)} ms; effective access for ${userCount} identities: ${rows.length} rows in ${reportMs.toFixed(0)} ms`,
  );
  await t.close();
}
