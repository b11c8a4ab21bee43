import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { errorCatalogue } from '../../src/core/errors.js';

const docs = readFileSync(join(import.meta.dirname, '../../docs/errors.md'), 'utf8');

test('docs/errors.md documents exactly the codes of the catalogue, with the same status and meaning', () => {
  const rows = new Map<string, { status: number; summary: string }>();
  for (const line of docs.split('\n')) {
    const match = /^\| `([A-Z0-9_]+)` \| (\d{3}) \| (.*) \|$/.exec(line);
    if (match) {
      assert.ok(!rows.has(match[1]!), `${match[1]} is documented twice`);
      rows.set(match[1]!, { status: Number(match[2]), summary: match[3]! });
    }
  }
  const codes = Object.keys(errorCatalogue);
  assert.deepEqual(
    [...rows.keys()].sort(),
    [...codes].sort(),
    'the documented codes and the catalogue differ',
  );
  for (const [code, spec] of Object.entries(errorCatalogue)) {
    assert.deepEqual(
      rows.get(code),
      { status: spec.status, summary: spec.summary },
      `${code} differs between code and docs`,
    );
  }
});

test('every code is namespaced, and every status is a 4xx or 5xx', () => {
  for (const [code, spec] of Object.entries(errorCatalogue)) {
    assert.match(code, /^[A-Z]+(_[A-Z0-9]+)+$/);
    assert.ok(spec.status >= 400 && spec.status < 600, code);
  }
});
