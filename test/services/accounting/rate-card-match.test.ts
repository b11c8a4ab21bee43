import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matches, type FactMatch } from '../../../src/services/accounting/rate-card.js';

test("a rate card's match reads only the VM's own facts: __proto__ and constructor match no VM", () => {
  const facts = { 'hypervisor.type': 'qemu', 'cpu.count': 2 };
  assert.equal(matches({ 'hypervisor.type': 'qemu' }, facts), true);
  // Parsed JSON, where __proto__ is a key like any other (the API's schema also refuses {} values).
  for (const body of ['{"__proto__": {}}', '{"constructor": {}}', '{"toString": {}}'])
    assert.equal(matches(JSON.parse(body) as FactMatch, facts), false, body);
});
