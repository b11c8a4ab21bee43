import assert from 'node:assert/strict';
import { test } from 'node:test';
import { csvDecimal, csvField, toCsv } from '../../src/core/csv.js';
import { parseCsv } from '../../src/testing/csv-reader.js';

test('fields with commas, quotes and line breaks are quoted, quotes doubled; others are left bare', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField(42), '42');
  assert.equal(csvField(null), '');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField('cr\r'), '"cr\r"');
});

test('a table written as CSV reads back field for field', () => {
  const rows = [
    ['alice', 'vm.power', 'cluster "a", east', 'line one\r\nline two'],
    ['', '0', ',', '""'],
  ];
  const text = toCsv(['who', 'what', 'where', 'note'], rows);
  assert.ok(text.endsWith('\r\n'));
  assert.deepEqual(parseCsv(text), [['who', 'what', 'where', 'note'], ...rows]);
});

test('text a spreadsheet would take for a formula starts with a quote; numbers stay numbers', () => {
  for (const text of ['=1+1', '+1', '-1+cmd', '@SUM(A1)', '\tx', '\rx'])
    assert.equal(parseCsv(toCsv(['cell'], [[text]]))[1]![0], `'${text}`, JSON.stringify(text));
  // Quoting still applies after the prefix.
  assert.equal(csvField('=HYPERLINK("x", "y")'), `"'=HYPERLINK(""x"", ""y"")"`);
  assert.equal(csvField('a=b'), 'a=b');
  assert.equal(csvField(-12), '-12');
  assert.equal(csvField(-0.5), '-0.5');
  assert.equal(csvField(csvDecimal('-12.50')), '-12.50');
  assert.equal(csvField(Number.NEGATIVE_INFINITY), "'-Infinity");
  assert.throws(() => csvDecimal('=1+1'), TypeError);
});
