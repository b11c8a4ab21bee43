/**
 * Sensor history of physical machines: what their BMCs read, one row per
 * machine and sample (power draw, the highest temperature, the average fan
 * speed), kept `retentionMs`, read back as chart points of any step and as
 * energy (kWh, integrated from the watts: ./energy.ts).
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { MachineSensor } from '../../hypervisors/driver.js';
import type { Store } from '../../store/store.js';
import { chartSteps } from '../metrics/chart-steps.js';
import { energyOf, type EnergyFigures, type WattSample } from '../accounting/energy.js';

export interface SensorSettings {
  /** How often every present machine's sensors are read. */
  sensorSampleEveryMs: number;
  /** How long samples are kept. */
  sensorRetentionMs: number;
  /** BMCs read at once. */
  sensorConcurrency: number;
}

export const defaultSensorSettings: SensorSettings = {
  sensorSampleEveryMs: 60_000,
  sensorRetentionMs: 35 * 86_400_000,
  sensorConcurrency: 8,
};

export interface SensorSample {
  machineId: string;
  at: number;
  watts: number | null;
  temperatureC: number | null;
  fanRpm: number | null;
}

export interface SensorPoint {
  at: number;
  watts: number | null;
  temperatureC: number | null;
  fanRpm: number | null;
}

export interface SensorHistoryView {
  machineId: string;
  stepSeconds: number;
  points: SensorPoint[];
}

export const maxSensorPoints = 5_000;
/** Rows per INSERT statement (SQLite caps the bound parameters of one statement). */
const batchRows = 200;

/** One sample from one reading of a machine's sensors. */
export function summarizeSensors(
  machineId: string,
  at: number,
  sensors: readonly MachineSensor[],
): SensorSample {
  const power = sensors.find((s) => s.kind === 'power');
  const temperatures = sensors.filter((s) => s.kind === 'temperature').map((s) => s.value);
  const fans = sensors.filter((s) => s.kind === 'fan').map((s) => s.value);
  return {
    machineId,
    at,
    watts: power ? power.value : null,
    temperatureC: temperatures.length > 0 ? Math.max(...temperatures) : null,
    fanRpm: fans.length > 0 ? fans.reduce((a, b) => a + b, 0) / fans.length : null,
  };
}

export class SensorHistory {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    readonly settings: SensorSettings = defaultSensorSettings,
  ) {}

  /** Longer than this between two samples is a gap: not guessed (three sampling periods). */
  get maxGapMs(): number {
    return 3 * this.settings.sensorSampleEveryMs;
  }

  async record(samples: readonly SensorSample[]): Promise<number> {
    for (let i = 0; i < samples.length; i += batchRows)
      await this.store.db
        .insertInto('machine_sensor_samples')
        .values(
          samples.slice(i, i + batchRows).map((s) => ({
            machine_id: s.machineId,
            at: s.at,
            watts: s.watts,
            temperature_c: s.temperatureC,
            fan_rpm: s.fanRpm,
          })),
        )
        .onConflict((oc) => oc.columns(['machine_id', 'at']).doNothing())
        .execute();
    return samples.length;
  }

  /** Deletes samples older than the retention. */
  async prune(): Promise<number> {
    const result = await this.store.db
      .deleteFrom('machine_sensor_samples')
      .where('at', '<', this.clock.now() - this.settings.sensorRetentionMs)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Samples of one machine with from ≤ at < to, in time order. */
  async samples(machineId: string, from: number, to: number): Promise<SensorSample[]> {
    const rows = await this.store.db
      .selectFrom('machine_sensor_samples')
      .selectAll()
      .where('machine_id', '=', machineId)
      .where('at', '>=', from)
      .where('at', '<', to)
      .orderBy('at')
      .execute();
    return rows.map((row) => ({
      machineId: row.machine_id,
      at: Number(row.at),
      watts: numberOrNull(row.watts),
      temperatureC: numberOrNull(row.temperature_c),
      fanRpm: numberOrNull(row.fan_rpm),
    }));
  }

  /**
   * Power readings of several machines around [from, to): a gap's worth on each side, so the
   * trapezoids that cross the period's ends are there.
   */
  async watts(
    machineIds: readonly string[],
    from: number,
    to: number,
  ): Promise<Map<string, WattSample[]>> {
    const found = new Map<string, WattSample[]>();
    if (machineIds.length === 0) return found;
    const rows = await this.store.db
      .selectFrom('machine_sensor_samples')
      .select(['machine_id', 'at', 'watts'])
      .where('machine_id', 'in', [...machineIds])
      .where('at', '>=', from - this.maxGapMs)
      .where('at', '<=', to + this.maxGapMs)
      .orderBy('machine_id')
      .orderBy('at')
      .execute();
    for (const row of rows) {
      const sample = { at: Number(row.at), watts: numberOrNull(row.watts) };
      const list = found.get(row.machine_id);
      if (list) list.push(sample);
      else found.set(row.machine_id, [sample]);
    }
    return found;
  }

  /** The energy a machine drew in [from, to). */
  async energy(machineId: string, from: number, to: number): Promise<EnergyFigures> {
    checkPeriod(from, to);
    const samples = (await this.watts([machineId], from, to)).get(machineId) ?? [];
    return energyOf(samples, from, to, this.maxGapMs);
  }

  /**
   * Chart points of one machine: one per step from `from` (rounded down to a whole step since
   * the epoch) to `to`; a sample counts in the step it was taken in; null where none was.
   */
  async history(
    machineId: string,
    request: { from: number; to: number; stepSeconds: number },
  ): Promise<SensorHistoryView> {
    const { to, stepSeconds } = request;
    const { stepMs, first, count } = chartSteps(request, maxSensorPoints, checkPeriod);
    const sums = Array.from({ length: count }, () => ({
      watts: 0,
      wattsCount: 0,
      temperatureC: null as number | null,
      fan: 0,
      fanCount: 0,
    }));
    for (const sample of await this.samples(machineId, first, to)) {
      const step = sums[Math.floor((sample.at - first) / stepMs)];
      if (!step) continue;
      if (sample.watts !== null) {
        step.watts += sample.watts;
        step.wattsCount++;
      }
      if (sample.temperatureC !== null)
        step.temperatureC = Math.max(step.temperatureC ?? sample.temperatureC, sample.temperatureC);
      if (sample.fanRpm !== null) {
        step.fan += sample.fanRpm;
        step.fanCount++;
      }
    }
    return {
      machineId,
      stepSeconds,
      points: sums.map((step, i) => ({
        at: first + i * stepMs,
        watts: step.wattsCount > 0 ? step.watts / step.wattsCount : null,
        temperatureC: step.temperatureC,
        fanRpm: step.fanCount > 0 ? step.fan / step.fanCount : null,
      })),
    };
  }
}

function checkPeriod(from: number, to: number): void {
  if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && from >= 0 && from < to))
    throw new ZenithError('ZEN_BAD_REQUEST', 'the period must end after it starts', { from, to });
}

/** PostgreSQL hands double precision back as numbers; null stays null. */
function numberOrNull(value: number | string | null): number | null {
  return value === null ? null : Number(value);
}
