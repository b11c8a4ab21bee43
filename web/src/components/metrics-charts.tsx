/**
 * The VM's metrics over a chosen period (1 h, 6 h, 24 h, 7 d) as four line charts (CPU, memory,
 * disk, network), from GET /vms/ID/metrics/history. A server without that route (404) shows
 * "metrics history unavailable" with the code, instead of empty charts.
 */
import { Alert, Paper, SegmentedControl, SimpleGrid, Stack, Text, Title } from '@mantine/core';
import { useEffect, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import { reasonOf } from '../api/follow-task.ts';
import { metricsHistory } from '../api/vm-calls.ts';
import type { MetricsHistory, MetricsPoint } from '../api/vm-types.ts';
import { formatBytes } from '../pages/inventory-page.tsx';
import { hourMs as hour, TimeSeriesChart, type ChartSeries } from './time-series-chart.tsx';

/** Each period with a step that gives 60 to 360 points. */
const periods = [
  { value: '1h', label: '1 h', spanMs: hour, stepSeconds: 60 },
  { value: '6h', label: '6 h', spanMs: 6 * hour, stepSeconds: 300 },
  { value: '24h', label: '24 h', spanMs: 24 * hour, stepSeconds: 900 },
  { value: '7d', label: '7 d', spanMs: 7 * 24 * hour, stepSeconds: 3600 },
];

type Loaded =
  | { state: 'loading' }
  | { state: 'loaded'; history: MetricsHistory }
  | { state: 'unavailable'; code: string }
  | { state: 'failed'; reason: string };

const charts: Array<{
  title: string;
  series: Array<ChartSeries<MetricsPoint>>;
  unit: (value: number) => string;
}> = [
  {
    title: 'CPU',
    series: [{ key: 'cpuPercent', name: 'CPU %', color: '#228be6' }],
    unit: (value) => `${value.toFixed(0)} %`,
  },
  {
    title: 'Memory',
    series: [{ key: 'memoryUsedBytes', name: 'Used', color: '#7950f2' }],
    unit: formatBytes,
  },
  {
    title: 'Disk',
    series: [
      { key: 'diskReadBytesPerSec', name: 'Read /s', color: '#12b886' },
      { key: 'diskWriteBytesPerSec', name: 'Write /s', color: '#fd7e14' },
    ],
    unit: formatBytes,
  },
  {
    title: 'Network',
    series: [
      { key: 'netRxBytesPerSec', name: 'Received /s', color: '#15aabf' },
      { key: 'netTxBytesPerSec', name: 'Sent /s', color: '#e64980' },
    ],
    unit: formatBytes,
  },
];

export function MetricsCharts(props: { vmId: string; client: ApiClient }) {
  const { vmId, client } = props;
  const [period, setPeriod] = useState('1h');
  const [loaded, setLoaded] = useState<Loaded>({ state: 'loading' });

  useEffect(() => {
    const chosen = periods.find((p) => p.value === period) ?? periods[0]!;
    const abort = new AbortController();
    const to = Date.now();
    setLoaded({ state: 'loading' });
    metricsHistory(
      client,
      vmId,
      { from: to - chosen.spanMs, to, stepSeconds: chosen.stepSeconds },
      abort.signal,
    )
      .then((history) => setLoaded({ state: 'loaded', history }))
      .catch((failure: unknown) => {
        if (abort.signal.aborted) return;
        setLoaded(
          failure instanceof ApiError && failure.status === 404
            ? { state: 'unavailable', code: failure.code }
            : { state: 'failed', reason: reasonOf(failure) },
        );
      });
    return () => abort.abort();
  }, [client, vmId, period]);

  const spanMs = (periods.find((p) => p.value === period) ?? periods[0]!).spanMs;
  // A VM that did not run in the period answers points with nothing measured: say so, no empty axes.
  const measured =
    loaded.state === 'loaded' &&
    loaded.history.points.some((point) =>
      charts.some((chart) => chart.series.some((series) => point[series.key] !== null)),
    );
  return (
    <Stack>
      <SegmentedControl
        aria-label="Metrics period"
        w="fit-content"
        value={period}
        onChange={setPeriod}
        data={periods.map(({ value, label }) => ({ value, label }))}
      />
      {loaded.state === 'loading' && <Text c="dimmed">Loading metrics…</Text>}
      {loaded.state === 'unavailable' && (
        <Alert color="gray" title="Metrics history unavailable" role="status">
          Metrics history unavailable ({loaded.code}): this server does not keep a VM&apos;s metrics
          over time.
        </Alert>
      )}
      {loaded.state === 'failed' && (
        <Alert color="red" role="alert" title="Metrics could not be loaded">
          {loaded.reason}
        </Alert>
      )}
      {loaded.state === 'loaded' && !measured && (
        <Text c="dimmed">No measurements in this period.</Text>
      )}
      {loaded.state === 'loaded' && measured && (
        <SimpleGrid cols={{ base: 1, lg: 2 }}>
          {charts.map((chart) => (
            <Paper
              key={chart.title}
              withBorder
              p="sm"
              role="figure"
              aria-label={`${chart.title} chart`}
            >
              <Title order={4} mb="xs">
                {chart.title}
              </Title>
              <TimeSeriesChart
                points={loaded.history.points}
                series={chart.series}
                unit={chart.unit}
                spanMs={spanMs}
              />
            </Paper>
          ))}
        </SimpleGrid>
      )}
    </Stack>
  );
}
