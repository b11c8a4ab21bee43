import type { EventData, NewEvent } from '../../../src/api/events.js';
/**
 * The reconcile plan alone, without a store: an in-memory inventory (the real index and handovers)
 * that takes each plan as the service would after its transaction.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import type {
  DiscoveredObject,
  DiscoveredVm,
  ExternalRef,
  ObjectKind,
  PowerState,
} from '../../../src/hypervisors/driver.js';
import { InventoryIndex } from '../../../src/services/inventory/inventory-index.js';
import {
  planReconcile,
  type ReconcilePlan,
  type StoredTags,
} from '../../../src/services/inventory/reconcile-plan.js';
import { VmHandovers } from '../../../src/services/inventory/vm-handovers.js';

/** An inventory event's data, as the planner writes it for a created, updated or missing object. */
const updatedData = (event: NewEvent | undefined) =>
  event?.data as EventData<'inventory.updated'> | undefined;

const dc: DiscoveredObject = {
  kind: 'datacenter',
  externalId: 'dc',
  name: 'dc1',
  parent: null,
  facts: {},
};
const host = (n: number): DiscoveredObject => ({
  kind: 'host',
  externalId: `h${n}`,
  name: `host-${n}`,
  parent: { kind: 'datacenter', externalId: 'dc' },
  facts: { 'cpu.cores': 8 },
});
const vm = (
  n: number,
  hostN: number,
  power: PowerState = 'running',
  facts: Record<string, string | number> = {},
): DiscoveredVm => ({
  kind: 'vm',
  externalId: `v${n}`,
  name: `vm-${n}`,
  parent: { kind: 'host', externalId: `h${hostN}` },
  hostExternalId: `h${hostN}`,
  powerState: power,
  tags: ['env:dev'],
  facts: { 'power.state': power, 'cpu.count': 2, ...facts },
});

/** An inventory in memory that applies plans as the service does once its transaction commits. */
class PlannedInventory {
  readonly clock = new ManualClock(Date.UTC(2026, 5, 1, 12));
  readonly index = new InventoryIndex();
  readonly handovers = new VmHandovers(this.clock);
  readonly tags = new Map<string, StoredTags>();
  readonly intervals = new Map<string, { hostId: string | null; powerState: PowerState }>();
  #nextId = 0;

  plan(
    connectionId: string,
    objects: DiscoveredObject[],
    options: { removals?: ExternalRef[]; full?: boolean } = {},
  ): ReconcilePlan {
    return planReconcile(
      {
        index: this.index,
        tags: (id) => this.tags.get(id),
        openInterval: (vmId) => this.intervals.get(vmId),
        handovers: this.handovers,
      },
      {
        connectionId,
        objects,
        removals: options.removals ?? [],
        full: options.full ?? true,
        now: this.clock.now(),
        newId: (kind: ObjectKind) => `${kind}_${++this.#nextId}`,
      },
    );
  }

  apply(plan: ReconcilePlan): ReconcilePlan {
    for (const change of plan.changes) {
      this.index.put(change.object);
      this.tags.set(change.object.id, { discovered: change.discoveredTags, user: change.userTags });
      if (change.location === null) this.intervals.delete(change.object.id);
      else if (change.location) this.intervals.set(change.object.id, change.location);
    }
    return plan;
  }

  idOf(connectionId: string, kind: ObjectKind, externalId: string): string {
    const id = this.index.idForExternal(connectionId, kind, externalId);
    assert.ok(id, `${kind} ${externalId} is in the inventory`);
    return id;
  }
}

const eventTypes = (plan: ReconcilePlan) => plan.events.map((event) => event.type);

describe('a reconcile plan, without a store', () => {
  test('a first snapshot creates parents before children, whatever the order reported', () => {
    const inventory = new PlannedInventory();
    const plan = inventory.plan('conn_A', [vm(1, 1), host(1), dc]);
    assert.deepEqual(plan.result, { created: 3, updated: 0, missing: 0, moved: 0 });
    const byKind = new Map(plan.changes.map((change) => [change.object.kind, change.object]));
    assert.equal(byKind.get('host')?.parentId, byKind.get('datacenter')?.id);
    assert.equal(byKind.get('vm')?.parentId, byKind.get('host')?.id);
    const vmChange = plan.changes.find((change) => change.object.kind === 'vm');
    assert.deepEqual(vmChange?.location, { hostId: byKind.get('host')?.id, powerState: 'running' });
    assert.deepEqual(eventTypes(plan), [
      'inventory.created',
      'inventory.created',
      'inventory.created',
    ]);
    // Planning wrote nothing.
    assert.equal(inventory.index.size, 0);
  });

  test('the same snapshot again plans nothing', () => {
    const inventory = new PlannedInventory();
    inventory.apply(inventory.plan('conn_A', [dc, host(1), vm(1, 1)]));
    const again = inventory.plan('conn_A', [dc, host(1), vm(1, 1)]);
    assert.deepEqual(again.changes, []);
    assert.deepEqual(again.events, []);
    assert.deepEqual(again.result, { created: 0, updated: 0, missing: 0, moved: 0 });
  });

  test('a changed fact, name and power state are updates naming what changed; a new host is a move', () => {
    const inventory = new PlannedInventory();
    inventory.apply(inventory.plan('conn_A', [dc, host(1), host(2), vm(1, 1)]));
    const vmId = inventory.idOf('conn_A', 'vm', 'v1');
    const renamed = { ...vm(1, 1, 'running', { 'cpu.count': 4 }), name: 'vm-one' };
    const update = inventory.apply(inventory.plan('conn_A', [dc, host(1), host(2), renamed]));
    assert.deepEqual(update.result, { created: 0, updated: 1, missing: 0, moved: 0 });
    assert.deepEqual(update.changes[0]?.changedKeys, ['name', 'cpu.count']);
    assert.equal(update.changes[0]?.location, undefined, 'same host and power: no new interval');
    assert.deepEqual(updatedData(update.events[0])?.changed, ['name', 'cpu.count']);

    inventory.apply(update);
    const onHost2: DiscoveredVm = {
      ...renamed,
      parent: { kind: 'host', externalId: 'h2' },
      hostExternalId: 'h2',
    };
    const moved = inventory.plan('conn_A', [dc, host(1), host(2), onHost2]);
    const host1 = inventory.idOf('conn_A', 'host', 'h1');
    const host2 = inventory.idOf('conn_A', 'host', 'h2');
    assert.equal(moved.result.moved, 1);
    assert.deepEqual(updatedData(moved.events[0])?.location, {
      hostId: host2,
      powerState: 'running',
      previousHostId: host1,
    });
    assert.equal(moved.changes[0]?.object.id, vmId);
    assert.deepEqual(moved.changes[0]?.changedKeys, ['parent']);

    const stoppedVm: DiscoveredVm = {
      ...renamed,
      powerState: 'stopped',
      facts: { ...renamed.facts, 'power.state': 'stopped' },
    };
    const stopped = inventory.plan('conn_A', [dc, host(1), host(2), stoppedVm]);
    assert.equal(stopped.result.moved, 0, 'a power change on the same host is no move');
    assert.deepEqual(stopped.changes[0]?.changedKeys, ['power.state']);
    assert.deepEqual(stopped.changes[0]?.location, { hostId: host1, powerState: 'stopped' });
  });

  test('what a full snapshot leaves out, and a removal, become missing; a missing VM is nowhere', () => {
    const inventory = new PlannedInventory();
    inventory.apply(inventory.plan('conn_A', [dc, host(1), vm(1, 1), vm(2, 1)]));
    const full = inventory.plan('conn_A', [dc, host(1), vm(1, 1)]);
    assert.deepEqual(full.result, { created: 0, updated: 0, missing: 1, moved: 0 });
    assert.equal(full.changes[0]?.object.status, 'missing');
    assert.equal(full.changes[0]?.object.missingSince, inventory.clock.now());
    assert.equal(full.changes[0]?.location, null);
    assert.deepEqual(eventTypes(full), ['inventory.missing']);

    // A delta without the VM leaves it alone; its removal marks it missing.
    assert.deepEqual(inventory.plan('conn_A', [], { full: false }).changes, []);
    const removal = inventory.plan('conn_A', [], {
      full: false,
      removals: [{ kind: 'vm', externalId: 'v2' }],
    });
    assert.deepEqual(removal.result, { created: 0, updated: 0, missing: 1, moved: 0 });
    inventory.apply(removal);
    // Already missing: nothing more to do.
    assert.deepEqual(inventory.plan('conn_A', [dc, host(1), vm(1, 1)]).changes, []);
    // Back again: present, with its identity.
    const back = inventory.plan('conn_A', [dc, host(1), vm(1, 1), vm(2, 1)]);
    assert.deepEqual(back.result, { created: 0, updated: 1, missing: 0, moved: 0 });
    assert.equal(back.changes[0]?.object.id, inventory.idOf('conn_A', 'vm', 'v2'));
    assert.deepEqual(back.changes[0]?.changedKeys, ['status']);
  });

  test("a user's tags and facts survive a discovery that changes the object", () => {
    const inventory = new PlannedInventory();
    inventory.apply(inventory.plan('conn_A', [dc, host(1), vm(1, 1)]));
    const vmId = inventory.idOf('conn_A', 'vm', 'v1');
    inventory.tags.set(vmId, { discovered: ['env:dev'], user: ['team:blue'] });
    inventory.index.put({ ...inventory.index.get(vmId)!, userFacts: { 'user.owner': 'ana' } });
    const plan = inventory.plan('conn_A', [dc, host(1), { ...vm(1, 1), tags: ['env:prod'] }]);
    assert.deepEqual(plan.changes[0]?.changedKeys, ['tags']);
    assert.deepEqual(plan.changes[0]?.object.tags, ['env:prod', 'team:blue']);
    assert.deepEqual(plan.changes[0]?.userTags, ['team:blue']);
    assert.deepEqual(plan.changes[0]?.object.userFacts, { 'user.owner': 'ana' });
  });

  test('a VM with a known UUID on another connection is a conflict, unless Zenith moves it there', () => {
    const inventory = new PlannedInventory();
    const uuid = '6f1c0c2e-0000-4000-8000-000000000001';
    inventory.apply(
      inventory.plan('conn_A', [dc, host(1), vm(1, 1, 'running', { 'vm.uuid': uuid })]),
    );
    const original = inventory.idOf('conn_A', 'vm', 'v1');

    const claim = inventory.plan('conn_B', [host(7), vm(9, 7, 'running', { 'vm.uuid': uuid })]);
    assert.equal(claim.conflicts.length, 1);
    const claimant = claim.changes.find((change) => change.object.kind === 'vm')!.object;
    assert.notEqual(claimant.id, original, 'the claimant is a VM of its own');
    const conflict = claim.events.find((event) => event.type === 'inventory.conflict');
    assert.deepEqual(conflict?.data, {
      kind: 'vm',
      reason: 'uuid',
      uuid,
      vmId: original,
      connectionId: 'conn_B',
      vmConnectionId: 'conn_A',
    });

    // A migration Zenith runs to conn_B: the VM keeps its identity there.
    const release = inventory.handovers.hold(original, 'conn_B');
    const handover = inventory.plan('conn_B', [host(7), vm(9, 7, 'running', { 'vm.uuid': uuid })]);
    assert.deepEqual(handover.conflicts, []);
    const moved = handover.changes.find((change) => change.object.kind === 'vm')!;
    assert.equal(moved.object.id, original);
    assert.equal(moved.object.connectionId, 'conn_B');
    assert.ok(moved.changedKeys.includes('connection'));
    inventory.apply(handover);
    // The old host's last report of the VM it lets go of while the move is under way: not a VM.
    const lastReport = inventory.plan('conn_A', [
      dc,
      host(1),
      vm(1, 1, 'running', { 'vm.uuid': uuid }),
    ]);
    assert.deepEqual(lastReport.changes, []);
    release();
  });

  test('a host the VM failed over away from is disowned: an allowance it had before does not bring the VM back to its stale report', () => {
    const inventory = new PlannedInventory();
    const uuid = '6f1c0c2e-0000-4000-8000-000000000002';
    inventory.apply(
      inventory.plan('conn_C', [dc, host(3), vm(3, 3, 'running', { 'vm.uuid': uuid })]),
    );
    const original = inventory.idOf('conn_C', 'vm', 'v3');
    // An earlier start on conn_C whose answer was lost allowed its reports for a while; then the
    // VM failed over from conn_C to conn_A.
    inventory.handovers.allowUntil(original, 'conn_C', inventory.clock.now() + 120_000);
    const release = inventory.handovers.hold(original, 'conn_A');
    inventory.apply(
      inventory.plan('conn_A', [dc, host(1), vm(8, 1, 'running', { 'vm.uuid': uuid })]),
    );
    release();
    inventory.handovers.disown(original, 'conn_C');
    // conn_C is back with its stale, stopped definition: left out, the VM stays on conn_A.
    const back = inventory.plan('conn_C', [dc, host(3), vm(3, 3, 'stopped', { 'vm.uuid': uuid })]);
    assert.deepEqual(
      back.changes.filter((change) => change.object.kind === 'vm'),
      [],
    );
    assert.equal(inventory.index.get(original)?.connectionId, 'conn_A');
  });

  test('more than a thousand changes publish one summary event instead of one each', () => {
    const inventory = new PlannedInventory();
    const vms = Array.from({ length: 1000 }, (_, i) => vm(i, 1));
    const plan = inventory.plan('conn_A', [dc, host(1), ...vms]);
    assert.equal(plan.changes.length, 1002);
    assert.deepEqual(plan.events, [
      {
        type: 'inventory.synced',
        data: { connectionId: 'conn_A', created: 1002, updated: 0, missing: 0, moved: 0 },
      },
    ]);
    const small = inventory.plan('conn_A', [dc, host(1), ...vms.slice(0, 998)]);
    assert.equal(small.events.length, 1000);
  });
});
