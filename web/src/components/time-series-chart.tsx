/**
 * One line chart of points over time (recharts), shared by the VM metrics and the machine sensor
 * history: a time axis whose ticks suit the period, the values in their unit on the other axis and
 * in the tooltip, a dot per measured step (a step between two unmeasured ones has no line to show
 * it) and no line across unmeasured steps.
 */
import {
  CartesianGrid,
  Legend,
  Line,
  LineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts';

export const hourMs = 3_600_000;

export interface ChartSeries<Point> {
  key: keyof Point & string;
  name: string;
  color: string;
}

export function TimeSeriesChart<Point extends { at: number }>(props: {
  points: Point[];
  series: Array<ChartSeries<Point>>;
  unit: (value: number) => string;
  /** The period shown: over a day, ticks name the day and hour, else the time. */
  spanMs: number;
  height?: number;
}) {
  const { points, series, unit, spanMs, height = 200 } = props;
  const tick = (at: number) =>
    spanMs > 24 * hourMs
      ? new Date(at).toLocaleDateString(undefined, { weekday: 'short', hour: '2-digit' })
      : new Date(at).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  return (
    <ResponsiveContainer width="100%" height={height}>
      <LineChart data={points}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis
          dataKey="at"
          type="number"
          scale="time"
          domain={['dataMin', 'dataMax']}
          tickFormatter={tick}
        />
        <YAxis tickFormatter={unit} width={80} />
        <Tooltip
          labelFormatter={(at) => new Date(Number(at)).toLocaleString()}
          formatter={(value) => (typeof value === 'number' ? unit(value) : '—')}
        />
        <Legend />
        {series.map((line) => (
          <Line
            key={line.key}
            dataKey={line.key}
            name={line.name}
            stroke={line.color}
            dot={{ r: 2 }}
            isAnimationActive={false}
            connectNulls={false}
          />
        ))}
      </LineChart>
    </ResponsiveContainer>
  );
}
