/**
 * Waiting for a vSphere Task: its `info` is read until it succeeds or fails,
 * reporting progress on the way. A failed task becomes the coded error of
 * its fault (VIM_INVALID_STATE, VIM_NOT_FOUND …).
 */
import { systemClock, type Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { localizedFaultError, PropertyCollector } from './property-collector.js';
import type { VimClient } from './vim-client.js';
import { MoRef, num, str, type VimValue } from './vim-values.js';

export interface TaskWaitOptions {
  signal?: AbortSignal;
  onProgress?: (percent: number) => void;
  clock?: Clock;
  /** Give up after this long (default 1 hour). */
  timeoutMs?: number;
}

/** Resolves with the task's result (a value, or undefined) once it succeeded. */
export async function waitForTask(
  client: VimClient,
  task: MoRef,
  options: TaskWaitOptions = {},
): Promise<VimValue | undefined> {
  const clock = options.clock ?? systemClock;
  const collector = new PropertyCollector(client);
  const deadline = clock.now() + (options.timeoutMs ?? 3_600_000);
  let pause = 20;
  let lastPercent = -1;
  for (;;) {
    const props = await collector.retrieveOne(task, [
      'info.state',
      'info.progress',
      'info.error',
      'info.result',
      'info.descriptionId',
    ]);
    if (!props)
      throw new ZenithError('VIM_NOT_FOUND', `task ${task.value} vanished before it ended`, {
        task: task.value,
      });
    const state = str(props.get('info.state'));
    const method = str(props.get('info.descriptionId')) ?? 'task';
    if (state === 'success') {
      if (lastPercent < 100) options.onProgress?.(100);
      return props.get('info.result');
    }
    if (state === 'error') throw localizedFaultError(props.get('info.error'), method);
    const percent = num(props.get('info.progress'));
    if (percent !== undefined && percent !== lastPercent) {
      lastPercent = percent;
      options.onProgress?.(percent);
    }
    if (clock.now() > deadline)
      throw new ZenithError('VIM_TIMEOUT', `task ${task.value} did not end in time`, {
        task: task.value,
        state,
      });
    await clock.sleep(pause, options.signal);
    pause = Math.min(pause * 2, 500);
  }
}

/** The task a *_Task method answered. */
export function asTask(value: VimValue | undefined, method: string): MoRef {
  if (!(value instanceof MoRef))
    throw new ZenithError('VIM_PROTOCOL_ERROR', `${method} answered no task`, { method });
  return value;
}
