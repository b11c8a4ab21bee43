/**
 * The agent's side of the storage-scan calls: a scan of thousands of images with long paths is
 * read back whole, in order, in pages that each fit the channel's 1 MiB frames with room to spare;
 * a scan read to its end, or never begun, is not kept.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Value } from 'typebox/value';
import { StorageScanHandles } from '../../src/agent/storage-scan-handles.js';
import { systemClock } from '../../src/core/clock.js';
import type { ScannedImage, StorageScan } from '../../src/hypervisors/facets/storage-scan.js';
import { agentCalls } from '../../src/protocols/agent-channel/call-map.js';

const context = { signal: new AbortController().signal, progress: () => undefined };

function scanOf(count: number): StorageScan {
  const images: ScannedImage[] = Array.from({ length: count }, (_, i) => ({
    path: `/storage/${'deep/'.repeat(200)}image-${String(i).padStart(5, '0')}.qcow2`,
    root: '/storage',
    format: 'qcow2',
    kind: 'disk',
    virtualBytes: 1 << 30,
    fileBytes: 1 << 18,
    allocatedBytes: 1 << 18,
    backingFile: null,
    label: null,
    problem: null,
    linkTarget: null,
    modifiedAt: 1,
    owner: null,
  }));
  return {
    startedAt: 1,
    finishedAt: 2,
    roots: [{ root: '/storage', error: null }],
    images,
    skipped: { linksOutside: 0, brokenLinks: 0, tooDeep: 0, unreadable: 0, notImages: 0 },
    truncated: false,
    definedVmUuids: [],
  };
}

test('a scan of 5,000 images with 1 KiB paths is read whole, in pages that fit a frame', async () => {
  const scan = scanOf(5000);
  const handlers = new StorageScanHandles(
    { scanStorage: async () => scan },
    systemClock,
  ).handlers();
  const summary = await handlers.startStorageScan([], context);
  assert.ok(Value.Check(agentCalls.startStorageScan.result, summary));
  assert.equal(summary.imageCount, 5000);
  const read: string[] = [];
  let next: number | null = 0;
  let pages = 0;
  while (next !== null) {
    const page = await handlers.readStorageScan([summary.scanId, next], context);
    assert.ok(Value.Check(agentCalls.readStorageScan.result, page));
    assert.ok(JSON.stringify(page).length < 600 * 1024, 'a page stays well inside 1 MiB');
    read.push(...page.images.map((image) => image.path));
    next = page.next;
    pages += 1;
  }
  assert.deepEqual(
    read,
    scan.images.map((image) => image.path),
  );
  assert.ok(pages >= 10, `${pages} pages`);
  await assert.rejects(handlers.readStorageScan([summary.scanId, 0], context), {
    code: 'ZEN_NOT_FOUND',
  });
});

test('a scan without images keeps nothing', async () => {
  const handlers = new StorageScanHandles(
    { scanStorage: async () => scanOf(0) },
    systemClock,
  ).handlers();
  const summary = await handlers.startStorageScan([], context);
  assert.equal(summary.imageCount, 0);
  await assert.rejects(handlers.readStorageScan([summary.scanId, 0], context), {
    code: 'ZEN_NOT_FOUND',
  });
});
