/**
 * Restart order groups: the group after one opens once every VM of it runs (from when the last
 * one did), or once its timeout has passed since it opened — and never before.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextGroupOpensAt } from '../../../src/services/ha/failover.js';
import { startOrder } from '../../../src/services/ha/ha-store.js';

const opened = 10_000;
const timeout = 5_000;

test('a group whose VMs all run opens the next when the last of them ran', () => {
  const group = [
    { state: 'running' as const, runningAt: 12_000 },
    { state: 'running' as const, runningAt: 13_500 },
  ];
  assert.equal(nextGroupOpensAt(group, opened, timeout, 14_000), 13_500);
});

test('a group with a VM still waiting holds the next back until its timeout, then lets it go', () => {
  const group = [
    { state: 'running' as const, runningAt: 12_000 },
    { state: 'waiting' as const, runningAt: null },
  ];
  assert.equal(nextGroupOpensAt(group, opened, timeout, 14_999), null);
  assert.equal(nextGroupOpensAt(group, opened, timeout, 15_000), 15_000);
  // Resumed much later (a control plane that was down): the gate is where it was.
  assert.equal(nextGroupOpensAt(group, opened, timeout, 90_000), 15_000);
});

test('a VM given up on (gone, or no description) does not hold its group', () => {
  const group = [
    { state: 'skipped' as const, runningAt: null },
    { state: 'failed' as const, runningAt: null },
    { state: 'running' as const, runningAt: 11_000 },
  ];
  assert.equal(nextGroupOpensAt(group, opened, timeout, 11_500), 11_000);
});

test('a starting VM (its answer not in yet) holds the group like a waiting one', () => {
  assert.equal(
    nextGroupOpensAt([{ state: 'starting', runningAt: null }], opened, timeout, 12_000),
    null,
  );
});

test('restarts are listed in start order: order group first, then priority, then name', () => {
  const restarts = [
    { vmName: 'cache', priority: 'highest', restartOrder: 2 },
    { vmName: 'web', priority: 'medium', restartOrder: 1 },
    { vmName: 'db', priority: 'highest', restartOrder: 1 },
    { vmName: 'api', priority: 'medium', restartOrder: 1 },
  ];
  assert.deepEqual(
    [...restarts].sort(startOrder).map((r) => r.vmName),
    ['db', 'api', 'web', 'cache'],
  );
});
