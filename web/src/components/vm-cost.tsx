/**
 * What this VM cost over a recent period, from the accounting report narrowed to it
 * (`/accounting/report?vm=ID&groupBy=vm`): the total and its parts, running hours, and the rate
 * card versions that priced it. Money comes in integer minor units and is formatted from them.
 */
import { Group, SegmentedControl, Table, Text } from '@mantine/core';
import { useEffect, useState } from 'react';
import type { Report } from '../api/accounting-types.ts';
import type { ApiClient } from '../api/client.ts';
import { reasonOf } from '../api/follow-task.ts';
import { formatMinor } from '../panels/money.ts';
import { ErrorAlert } from './error-alert.tsx';

const day = 86_400_000;
const periods = [
  { value: '1', label: 'Last 24 h' },
  { value: '7', label: 'Last 7 days' },
  { value: '30', label: 'Last 30 days' },
];

/** `changed` moves when the VM changes (power, host): the cost is read again then, and each minute. */
export function VmCost(props: { vmId: string; client: ApiClient; changed: string }) {
  const { vmId, client, changed } = props;
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const timer = window.setInterval(() => setTick((n) => n + 1), 60_000);
    return () => window.clearInterval(timer);
  }, []);
  const [days, setDays] = useState('7');
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    const to = Date.now();
    const query = new URLSearchParams({
      from: String(to - Number(days) * day),
      to: String(to),
      granularity: 'daily',
      groupBy: 'vm',
      vm: vmId,
    });
    client
      .call<Report>('GET', `/accounting/report?${query.toString()}`, undefined, abort.signal)
      .then((answer) => {
        setReport(answer);
        setError(null);
      })
      .catch((failure: unknown) => !abort.signal.aborted && setError(reasonOf(failure)));
    return () => abort.abort();
  }, [client, vmId, days, changed, tick]);

  const money = (minor: number) =>
    report ? formatMinor(minor, report.minorDigits, report.currency) : '';
  const runningHours = report
    ? report.rows.reduce((sum, row) => sum + row.runningMs, 0) / 3_600_000
    : 0;
  return (
    <>
      <SegmentedControl
        aria-label="Cost period"
        data={periods}
        value={days}
        onChange={setDays}
        mb="sm"
      />
      <ErrorAlert title="The cost could not be read" error={error} />
      {report && !error && (
        <>
          <Group gap="xs" mb="xs">
            <Text fw={700} size="lg" data-testid="vm-cost-total">
              {money(report.totals.total)}
            </Text>
            <Text c="dimmed" size="sm">
              running {runningHours.toFixed(2)} h
              {report.rateCards.length > 0
                ? ` · rate card version ${report.rateCards.map((c) => c.version).join(', ')}`
                : ' · no rate card in effect'}
            </Text>
          </Group>
          <Table aria-label="Cost by resource">
            <Table.Tbody>
              {(
                [
                  ['vCPU', report.totals.vcpu],
                  ['Memory', report.totals.memory],
                  ['Disk', report.totals.disk],
                  ['Fixed charges', report.totals.fixed],
                  ['Discount', -report.totals.discount],
                ] as const
              ).map(([label, minor]) => (
                <Table.Tr key={label}>
                  <Table.Th scope="row">{label}</Table.Th>
                  <Table.Td>{money(minor)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </>
      )}
    </>
  );
}
