/**
 * The machine's sensor history over a chosen period (1 h, 24 h, 7 d): power draw, highest
 * temperature and fan speed as line charts (GET /hosts/ID/sensors/history), each with a line of
 * text saying what it shows, and beside them the energy drawn in the period and how much of it the
 * samples cover (GET /hosts/ID/energy). Read again every 30 s while the tab is visible (Zenith
 * samples every minute by default) and when it becomes visible; a period without samples says so.
 */
import {
  Alert,
  Grid,
  Group,
  Paper,
  SegmentedControl,
  SimpleGrid,
  Text,
  Title,
} from '@mantine/core';
import { useEffect, useId, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import { reasonOf } from '../api/follow-task.ts';
import {
  energyOf,
  sensorHistoryOf,
  type MachineEnergyView,
  type SensorHistoryView,
  type SensorPoint,
} from '../api/machine-calls.ts';
import { hourMs, TimeSeriesChart } from '../components/time-series-chart.tsx';

const refreshEveryMs = 30_000;

/** Each period with a step that gives 60 to 168 points. */
const periods = [
  { value: '1h', label: '1 h', spanMs: hourMs, stepSeconds: 60, phrase: 'the last hour' },
  { value: '24h', label: '24 h', spanMs: 24 * hourMs, stepSeconds: 900, phrase: 'the last 24 h' },
  {
    value: '7d',
    label: '7 d',
    spanMs: 7 * 24 * hourMs,
    stepSeconds: 3600,
    phrase: 'the last 7 days',
  },
];
type Period = (typeof periods)[number];

type Loaded =
  | { state: 'loading' }
  | { state: 'loaded'; history: SensorHistoryView; energy: MachineEnergyView; period: Period }
  | { state: 'failed'; reason: string };

/** To a tenth, without a trailing ".0": 312 W, 41.5 °C. */
function figure(value: number): string {
  const tenths = Math.round(value * 10) / 10;
  return Number.isInteger(tenths) ? String(tenths) : tenths.toFixed(1);
}

const charts: Array<{
  title: string;
  key: 'watts' | 'temperatureC' | 'fanRpm';
  name: string;
  color: string;
  unit: (value: number) => string;
}> = [
  {
    title: 'Power draw',
    key: 'watts',
    name: 'Average W',
    color: '#fd7e14',
    unit: (value) => `${figure(value)} W`,
  },
  {
    title: 'Highest temperature',
    key: 'temperatureC',
    name: 'Highest °C',
    color: '#e03131',
    unit: (value) => `${figure(value)} °C`,
  },
  {
    title: 'Fan speed',
    key: 'fanRpm',
    name: 'Average RPM',
    color: '#1c7ed6',
    unit: (value) => `${figure(value)} RPM`,
  },
];

/** kWh to three significant figures, never in exponent notation: 0.00104, 1.23, 456. */
function formatKWh(kWh: number): string {
  if (kWh <= 0) return '0';
  const decimals = Math.min(6, Math.max(0, 2 - Math.floor(Math.log10(kWh))));
  return kWh.toFixed(decimals);
}

/** A duration as a person says it: 42 s, 1 min, 12 min 5 s, 3 h 20 min, 2 d 4 h. */
function formatDuration(ms: number): string {
  const both = (big: number, bigUnit: string, small: number, smallUnit: string) =>
    small === 0 ? `${big} ${bigUnit}` : `${big} ${bigUnit} ${small} ${smallUnit}`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return both(minutes, 'min', seconds % 60, 's');
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return both(hours, 'h', minutes % 60, 'min');
  return both(Math.floor(hours / 24), 'd', hours % 24, 'h');
}

function share(part: number, whole: number): string {
  const percent = (100 * part) / whole;
  if (percent > 0 && percent < 0.1) return 'under 0.1 %';
  return `${percent < 10 ? percent.toFixed(1) : percent.toFixed(0)} %`;
}

/** What a chart shows, in words: its text alternative. */
function summaryOf(
  points: SensorPoint[],
  chart: (typeof charts)[number],
  stepSeconds: number,
): string | null {
  const values = points
    .map((point) => point[chart.key])
    .filter((value): value is number => value !== null);
  const latest = values.at(-1);
  if (latest === undefined) return null;
  const { unit } = chart;
  return (
    `Latest ${unit(latest)}, lowest ${unit(Math.min(...values))}, highest ` +
    `${unit(Math.max(...values))}; ${values.length} of ${points.length} steps of ` +
    `${formatDuration(stepSeconds * 1000)} measured.`
  );
}

function SensorChart(props: {
  chart: (typeof charts)[number];
  history: SensorHistoryView;
  spanMs: number;
}) {
  const { chart, history, spanMs } = props;
  const summaryId = useId();
  const summary = summaryOf(history.points, chart, history.stepSeconds);
  return (
    <Paper
      withBorder
      p="sm"
      role="figure"
      aria-label={`${chart.title} chart`}
      aria-describedby={summaryId}
    >
      <Title order={5}>{chart.title}</Title>
      <Text size="xs" c="dimmed" id={summaryId} mb="xs">
        {summary ?? 'No readings in this period.'}
      </Text>
      {summary !== null && (
        <TimeSeriesChart
          points={history.points}
          series={[{ key: chart.key, name: chart.name, color: chart.color }]}
          unit={chart.unit}
          spanMs={spanMs}
          height={180}
        />
      )}
    </Paper>
  );
}

function EnergyFigures(props: { energy: MachineEnergyView; period: Period }) {
  const { energy, period } = props;
  return (
    <Paper withBorder p="sm" component="section" aria-label="Energy" h="100%">
      <Title order={5}>Energy</Title>
      {energy.coveredMs === 0 ? (
        <Text size="sm" c="dimmed">
          No power samples in {period.phrase}.
        </Text>
      ) : (
        <>
          <Text size="xl" fw={600} data-testid="machine-energy-kwh">
            {formatKWh(energy.kWh)} kWh
          </Text>
          <Text size="sm" data-testid="machine-energy-average">
            drawn in {period.phrase}, on average{' '}
            {energy.averageWatts === null ? '—' : `${figure(energy.averageWatts)} W`}
          </Text>
          <Text size="sm" c="dimmed" data-testid="machine-energy-covered">
            Samples cover {formatDuration(energy.coveredMs)} of it (
            {share(energy.coveredMs, energy.to - energy.from)}); longer gaps between samples are not
            counted.
          </Text>
        </>
      )}
    </Paper>
  );
}

export function MachineSensorHistory(props: { hostId: string; client: ApiClient }) {
  const { hostId, client } = props;
  const [periodValue, setPeriodValue] = useState('1h');
  const [loaded, setLoaded] = useState<Loaded>({ state: 'loading' });
  const [readings, setReadings] = useState(0);
  const period = periods.find((p) => p.value === periodValue) ?? periods[0]!;

  // A new period starts from "loading"; a refresh keeps the charts shown until it answers.
  useEffect(() => setLoaded({ state: 'loading' }), [hostId, period]);

  useEffect(() => {
    const abort = new AbortController();
    const to = Date.now();
    const from = to - period.spanMs;
    Promise.all([
      sensorHistoryOf(client, hostId, { from, to, stepSeconds: period.stepSeconds }, abort.signal),
      energyOf(client, hostId, { from, to }, abort.signal),
    ])
      .then(([history, energy]) => setLoaded({ state: 'loaded', history, energy, period }))
      .catch((failure: unknown) => {
        if (!abort.signal.aborted) setLoaded({ state: 'failed', reason: reasonOf(failure) });
      });
    return () => abort.abort();
  }, [client, hostId, period, readings]);

  useEffect(() => {
    const readAgain = () => {
      if (document.visibilityState === 'visible') setReadings((n) => n + 1);
    };
    const timer = setInterval(readAgain, refreshEveryMs);
    document.addEventListener('visibilitychange', readAgain);
    return () => {
      clearInterval(timer);
      document.removeEventListener('visibilitychange', readAgain);
    };
  }, []);

  const sampled =
    loaded.state === 'loaded' &&
    loaded.history.points.some((point) => charts.some((chart) => point[chart.key] !== null));
  return (
    <section aria-label="Sensor history">
      <Group justify="space-between" align="center" mb="xs">
        <Title order={4}>Sensor history</Title>
        <SegmentedControl
          aria-label="Sensor history period"
          size="xs"
          value={periodValue}
          onChange={setPeriodValue}
          data={periods.map(({ value, label }) => ({ value, label }))}
        />
      </Group>
      {loaded.state === 'loading' && <Text c="dimmed">Loading the sensor history…</Text>}
      {loaded.state === 'failed' && (
        <Alert color="red" role="alert" title="The sensor history could not be read">
          {loaded.reason}
        </Alert>
      )}
      {loaded.state === 'loaded' && !sampled && (
        <Text c="dimmed">No samples yet in {loaded.period.phrase}.</Text>
      )}
      {loaded.state === 'loaded' && sampled && (
        <Grid>
          <Grid.Col span={{ base: 12, lg: 9 }}>
            <SimpleGrid cols={{ base: 1, md: 3 }}>
              {charts.map((chart) => (
                <SensorChart
                  key={chart.key}
                  chart={chart}
                  history={loaded.history}
                  spanMs={loaded.period.spanMs}
                />
              ))}
            </SimpleGrid>
          </Grid.Col>
          <Grid.Col span={{ base: 12, lg: 3 }}>
            <EnergyFigures energy={loaded.energy} period={loaded.period} />
          </Grid.Col>
        </Grid>
      )}
    </section>
  );
}
