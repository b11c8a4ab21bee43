import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  compileBindingCondition,
  evaluateCondition,
  IdentityFacts,
} from '../../../src/services/identity/binding-conditions.js';
import { ObjectFacts } from '../../../src/services/policy/fact-sources.js';
import type { ManagedObject } from '../../../src/services/inventory/model.js';

const dana = new IdentityFacts(
  { id: 'usr_dana', name: 'dana', kind: 'user', role: 'none' },
  { department: 'eng' },
);
const vm: ManagedObject = {
  id: 'vm_1',
  kind: 'vm',
  name: 'web-1',
  parentId: null,
  connectionId: null,
  externalId: null,
  tags: [],
  facts: { 'power.state': 'running' },
  userFacts: { 'user.costCenter': 'eng' },
  computed: {},
  status: 'present',
  missingSince: null,
  createdAt: 0,
  updatedAt: 0,
};

test('a condition reads only facts the identity and the object have: constructor, toString, … are none', () => {
  const held = (condition: string) =>
    evaluateCondition('bind_1', compileBindingCondition(condition), dana, new ObjectFacts(vm)).held;
  assert.equal(held('subject.department == object.user.costCenter'), true);
  for (const key of ['constructor', 'toString', 'valueOf', 'hasOwnProperty']) {
    assert.equal(held(`subject.${key} != null`), false, `subject.${key}`);
    assert.equal(held(`object.${key} != null`), false, `object.${key}`);
  }
});
