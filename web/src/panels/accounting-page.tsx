/**
 * Accounting: showback (cost per group over a period) as a bar chart (recharts), and the usage and
 * cost report with its period, granularity and grouping, shown as a table and downloadable as CSV
 * or JSON (the API's own renderings, fetched with the session's token).
 */
import { useInputState } from '@mantine/hooks';
import { Button, Group, NativeSelect, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { ApiError, apiErrorOf } from '../api/api-error.ts';
import { apiBase, type ApiClient } from '../api/client.ts';
import type { Report, Showback } from '../api/accounting-types.ts';
import { formatMinor } from './money.ts';
import { TableHead } from '../components/table-head.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';

const granularities = ['hourly', 'daily', 'monthly'];
const dimensions = ['vm', 'owner', 'group', 'costCenter', 'cluster', 'host', 'hypervisor'];
const day = 86_400_000;

function dateInput(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The period of the form as the API wants it: [from 00:00 UTC, the day after `to`). */
function periodOf(from: string, to: string): { from: number; to: number } {
  const start = Date.parse(`${from}T00:00:00Z`);
  const end = Date.parse(`${to}T00:00:00Z`) + day;
  if (!Number.isFinite(start) || !Number.isFinite(end)) throw new Error('choose both dates');
  if (end <= start) throw new Error('the period ends before it starts');
  return { from: start, to: end };
}

export function AccountingPage(props: { client: ApiClient }) {
  const { client } = props;
  const [from, setFrom] = useInputState(dateInput(Date.now() - 6 * day));
  const [to, setTo] = useInputState(dateInput(Date.now()));
  const [granularity, setGranularity] = useInputState('daily');
  const [groupBy, setGroupBy] = useInputState('vm');
  const [showback, setShowback] = useState<Showback | null>(null);
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);

  const query = useCallback(
    (format: 'json' | 'csv') => {
      const period = periodOf(from, to);
      return new URLSearchParams({
        from: String(period.from),
        to: String(period.to),
        granularity,
        groupBy,
        format,
      }).toString();
    },
    [from, to, granularity, groupBy],
  );

  const show = useCallback(async () => {
    try {
      const period = periodOf(from, to);
      const [groups, rows] = await Promise.all([
        client.call<Showback>('GET', `/accounting/showback?from=${period.from}&to=${period.to}`),
        client.call<Report>('GET', `/accounting/report?${query('json')}`),
      ]);
      setShowback(groups);
      setReport(rows);
      setError(null);
    } catch (failure) {
      setError(failure instanceof ApiError ? failure.reason : String(failure));
    }
  }, [client, from, to, query]);

  useEffect(() => {
    void show();
    // Only the first view is automatic; later ones follow the form's button.
  }, []);

  const download = async (format: 'json' | 'csv') => {
    try {
      const response = await fetch(`${apiBase}/accounting/report?${query(format)}`, {
        headers: { authorization: `Bearer ${client.token}` },
      });
      if (!response.ok) throw await apiErrorOf(response);
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement('a');
      link.href = url;
      link.download = `zenith-report-${from}-${to}-${groupBy}.${format}`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (failure) {
      setError(failure instanceof ApiError ? failure.reason : String(failure));
    }
  };

  const money = (minor: number, of: { minorDigits: number; currency: string | null }) =>
    formatMinor(minor, of.minorDigits, of.currency);

  return (
    <Stack>
      <Title order={2}>Accounting</Title>
      <form
        aria-label="Report"
        onSubmit={(event) => {
          event.preventDefault();
          void show();
        }}
      >
        <Group align="end">
          <TextInput type="date" label="From" value={from} onChange={setFrom} />
          <TextInput type="date" label="To (inclusive)" value={to} onChange={setTo} />
          <NativeSelect
            label="Granularity"
            data={granularities}
            value={granularity}
            onChange={setGranularity}
          />
          <NativeSelect label="Group by" data={dimensions} value={groupBy} onChange={setGroupBy} />
          <Button type="submit">Show</Button>
          <Button variant="default" onClick={() => void download('csv')}>
            Download CSV
          </Button>
          <Button variant="default" onClick={() => void download('json')}>
            Download JSON
          </Button>
        </Group>
      </form>
      <ErrorAlert title="The report could not be made" error={error} />
      {showback && (
        <section aria-label="Showback per group">
          <Title order={3}>Showback per group</Title>
          <Text size="sm" c="dimmed">
            Total {money(showback.totals.total, showback)} over {showback.groups.length} groups
          </Text>
          <div style={{ width: '100%', height: 280 }} role="img" aria-label="Cost per group">
            <ResponsiveContainer>
              <BarChart data={showback.groups.map((g) => ({ group: g.key, cost: g.cost.total }))}>
                <CartesianGrid strokeDasharray="3 3" />
                <XAxis dataKey="group" />
                <YAxis tickFormatter={(v: number) => money(v, showback)} width={110} />
                <Tooltip formatter={(v) => money(Number(v), showback)} />
                <Bar dataKey="cost" name="Cost" fill="#228be6" isAnimationActive={false} />
              </BarChart>
            </ResponsiveContainer>
          </div>
        </section>
      )}
      {report && (
        <>
          <Title order={3}>
            Report by {groupBy}, {granularity}
          </Title>
          <Text size="sm">Total {money(report.totals.total, report)}</Text>
          <Table aria-label="Report rows" striped>
            <TableHead columns={['Period start', groupBy, 'VMs', 'Running hours', 'Cost']} />
            <Table.Tbody>
              {report.rows.slice(0, 200).map((row) => (
                <Table.Tr key={`${row.bucketStart}-${row.key}`}>
                  <Table.Td>{new Date(row.bucketStart).toISOString().slice(0, 16)}</Table.Td>
                  <Table.Td>{row.label}</Table.Td>
                  <Table.Td>{row.vms}</Table.Td>
                  <Table.Td>{Math.round(row.runningMs / 3_600_000)}</Table.Td>
                  <Table.Td>{money(row.cost.total, report)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          {report.rows.length > 200 && (
            <Text size="sm" c="dimmed">
              The first 200 of {report.rows.length} rows; download the report for all of them.
            </Text>
          )}
        </>
      )}
    </Stack>
  );
}
