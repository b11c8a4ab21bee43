/** The steps of a history chart (VM metrics, machine sensors): one grid, checked the same way. */
import { ZenithError } from '../../core/errors.js';

/** Steps of stepMs from `first` (the period's start rounded down to a whole step since the epoch). */
export interface ChartSteps {
  stepMs: number;
  first: number;
  count: number;
}

/**
 * The steps covering [from, to): the step must be a whole number of seconds, the period passes
 * `checkPeriod` (each history has its own), and there may be at most `maxPoints` steps.
 */
export function chartSteps(
  request: { from: number; to: number; stepSeconds: number },
  maxPoints: number,
  checkPeriod: (from: number, to: number) => void,
): ChartSteps {
  const { from, to, stepSeconds } = request;
  if (!Number.isInteger(stepSeconds) || stepSeconds < 1)
    throw new ZenithError('ZEN_BAD_REQUEST', 'step must be a whole number of seconds, at least 1', {
      step: stepSeconds,
    });
  checkPeriod(from, to);
  const stepMs = stepSeconds * 1000;
  const first = Math.floor(from / stepMs) * stepMs;
  const count = Math.ceil((to - first) / stepMs);
  if (count > maxPoints)
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      `the period holds ${count} steps; at most ${maxPoints}: take a longer step`,
      { from, to, step: stepSeconds, maxPoints },
    );
  return { stepMs, first, count };
}
