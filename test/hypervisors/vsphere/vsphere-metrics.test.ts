import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  counterIds,
  decodeEntityMetric,
  toVmMetrics,
} from '../../../src/hypervisors/vsphere/vsphere-metrics.js';
import { decodeValue } from '../../../src/protocols/vim/vim-values.js';
import { parseXml } from '../../../src/protocols/vim/xml-tree.js';

const counter = (key: number, group: string, name: string, rollup: string) =>
  decodeValue(
    parseXml(
      `<c xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="PerfCounterInfo"><key>${key}</key><nameInfo><label>x</label><summary>x</summary><key>${name}</key></nameInfo><groupInfo><label>x</label><summary>x</summary><key>${group}</key></groupInfo><unitInfo><label>x</label><summary>x</summary><key>u</key></unitInfo><rollupType>${rollup}</rollupType><statsType>rate</statsType></c>`,
    ),
  );

const perfCounter = [
  counter(14, 'cpu', 'used', 'summation'),
  counter(97, 'mem', 'consumed', 'none'),
  counter(98, 'mem', 'consumed', 'average'),
  counter(130, 'disk', 'read', 'average'),
  counter(131, 'disk', 'write', 'average'),
  counter(148, 'net', 'received', 'average'),
  counter(149, 'net', 'transmitted', 'average'),
];

/** A QueryPerf answer as the simulator writes it: newest sample first. */
const reply =
  parseXml(`<returnval xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="PerfEntityMetric">
  <entity type="VirtualMachine">vm-1</entity>
  <sampleInfo><timestamp>2026-12-01T10:00:40Z</timestamp><interval>20</interval></sampleInfo>
  <sampleInfo><timestamp>2026-12-01T10:00:20Z</timestamp><interval>20</interval></sampleInfo>
  <sampleInfo><timestamp>2026-12-01T10:00:00Z</timestamp><interval>20</interval></sampleInfo>
  <value xsi:type="PerfMetricIntSeries"><id><counterId>14</counterId><instance></instance></id><value>100</value><value>200</value><value>300</value></value>
  <value xsi:type="PerfMetricIntSeries"><id><counterId>98</counterId><instance></instance></id><value>2048</value><value>1024</value><value>512</value></value>
  <value xsi:type="PerfMetricIntSeries"><id><counterId>130</counterId><instance></instance></id><value>1</value><value>2</value><value>3</value></value>
  <value xsi:type="PerfMetricIntSeries"><id><counterId>131</counterId><instance></instance></id><value>10</value><value>0</value><value>0</value></value>
</returnval>`);

test('counters are found by group, name and rollup, whatever their ids on this server', () => {
  const ids = counterIds(perfCounter);
  assert.equal(ids.get('cpu.used.summation'), 14);
  assert.equal(ids.get('mem.consumed.average'), 98);
  assert.equal(ids.get('mem.consumed.none'), 97);
  assert.equal(ids.get('net.transmitted.average'), 149);
});

test('realtime samples become counters: sums of time and of KB/s × 20 s, memory from the newest sample', () => {
  const series = decodeEntityMetric(decodeValue(reply));
  assert.equal(series.timestamps.length, 3);
  const metrics = toVmMetrics(series, counterIds(perfCounter), 4 * 2 ** 30, 0);
  assert.deepEqual(metrics, {
    sampledAt: Date.parse('2026-12-01T10:00:40Z'),
    cpuTimeMs: 600,
    memoryUsedBytes: 2048 * 1024,
    memoryConfiguredBytes: 4 * 2 ** 30,
    diskReadBytes: 6 * 20 * 1024,
    diskWriteBytes: 10 * 20 * 1024,
    diskReadOps: 0,
    diskWriteOps: 0,
    // The server has the network counters but answered no series for them: nothing counted.
    netRxBytes: null,
    netTxBytes: null,
  });
});

test('one sample (a value not repeated) and an empty answer', () => {
  const one =
    parseXml(`<returnval xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="PerfEntityMetric">
  <entity type="VirtualMachine">vm-1</entity>
  <sampleInfo><timestamp>2026-12-01T10:00:00Z</timestamp><interval>20</interval></sampleInfo>
  <value xsi:type="PerfMetricIntSeries"><id><counterId>14</counterId><instance></instance></id><value>42</value></value>
</returnval>`);
  const metrics = toVmMetrics(decodeEntityMetric(decodeValue(one)), counterIds(perfCounter), 0, 0);
  assert.equal(metrics.cpuTimeMs, 42);
  assert.equal(metrics.memoryUsedBytes, 0);
  const empty = toVmMetrics(decodeEntityMetric(undefined), counterIds(perfCounter), 0, 1234);
  assert.equal(empty.sampledAt, 1234);
  assert.equal(empty.cpuTimeMs, 0);
});
