/** Waits for a task through the event stream, drawing a progress bar on a terminal. */
import { ZenithError, isErrorCode } from '../api/errors.js';
import { isEvent, isTaskEnd } from '../api/event-guards.js';
import { ApiClient } from './client.js';
import { printJson } from './output.js';

export interface TaskSummary {
  id: string;
  kind: string;
  state: string;
  progress: number;
  progressMessage: string | null;
  error: { code: string; message: string } | null;
  result: unknown;
}

const final = ['succeeded', 'failed', 'cancelled'];

function bar(percent: number, message: string | null): string {
  const width = 30;
  const filled = Math.round((percent / 100) * width);
  return `\r[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${String(percent).padStart(3)}% ${message ?? ''}`.padEnd(
    80,
  );
}

export async function waitForTask(
  client: ApiClient,
  taskId: string,
  options: { quiet?: boolean } = {},
): Promise<TaskSummary> {
  const draw = !options.quiet && process.stderr.isTTY;
  const controller = new AbortController();
  let task = await client.get<TaskSummary>(`/tasks/${taskId}`);
  // Follow the stream for prompt updates; re-read the task when it says something happened.
  const follow = (async () => {
    try {
      for await (const event of client.stream(
        `/events/stream?objectId=${taskId}&since=0`,
        controller.signal,
      )) {
        if (isEvent(event, 'task.progress') && draw)
          process.stderr.write(bar(event.data.percent, event.data.message));
        if (isTaskEnd(event)) return;
      }
    } catch {
      // the poll below still finishes the wait
    }
  })();
  while (!final.includes(task.state)) {
    await Promise.race([follow, new Promise((r) => setTimeout(r, 500))]);
    task = await client.get<TaskSummary>(`/tasks/${taskId}`);
  }
  controller.abort();
  if (draw)
    process.stderr.write(`${bar(task.state === 'succeeded' ? 100 : task.progress, task.state)}\n`);
  if (task.state !== 'succeeded') {
    const code =
      task.error?.code && isErrorCode(task.error.code) ? task.error.code : 'ZEN_TASK_CANCELLED';
    throw new ZenithError(
      code,
      `task ${task.id} (${task.kind}) ${task.state}: ${task.error?.message ?? 'no reason given'}`,
      { taskId: task.id },
    );
  }
  return task;
}

/** Sends an action that answers with a task; waits for it (with a progress bar) unless told not to. */
export async function runTask(
  globals: { json?: boolean; server?: string },
  method: string,
  path: string,
  body: unknown,
  wait: boolean,
): Promise<void> {
  const client = ApiClient.fromConfig(globals);
  const task = await client.request<TaskSummary>(
    method,
    path,
    body ?? (method === 'POST' ? {} : undefined),
  );
  if (!wait) {
    if (globals.json) printJson(task);
    else process.stderr.write(`queued ${task.kind} as ${task.id}\n`);
    return;
  }
  const done = await waitForTask(client, task.id, { quiet: globals.json === true });
  if (globals.json) printJson(done);
  else process.stderr.write(`${done.kind} succeeded (${done.id})\n`);
}
