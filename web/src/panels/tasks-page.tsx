/**
 * Tasks and events: the recent tasks with their state and progress, and the recent events, both
 * kept live from the event stream (a task's events fetch it again; events are appended as they
 * arrive, newest first, at most the last 100).
 */
import { Badge, Grid, Progress, Stack, Table, Text, Title } from '@mantine/core';
import { useEffect, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import type { Task, ZenithEvent } from '../api/types.ts';
import { ObjectLink } from '../components/object-link.tsx';
import { usePermissions } from '../permissions.ts';
import { TableHead } from '../components/table-head.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';

/** A task as the contract declares it (GET /tasks). */
type TaskRow = Task;

const shown = 50;
const stateColor: Record<string, string> = {
  succeeded: 'green',
  failed: 'red',
  cancelled: 'gray',
  running: 'blue',
  queued: 'yellow',
};

export function time(ms: number): string {
  return new Date(ms).toLocaleString();
}

/** The name a task's parameters give its target, where they give one. */
function targetName(task: TaskRow): string | null {
  for (const key of ['vmName', 'hostName', 'name'])
    if (typeof task.params?.[key] === 'string') return task.params[key];
  return null;
}

function eventObjectName(event: ZenithEvent): string | null {
  return 'name' in event.data && typeof event.data.name === 'string' ? event.data.name : null;
}

export function TasksPage(props: { client: ApiClient; events: EventStream }) {
  const { client, events } = props;
  const mayReadEvents = usePermissions().canAnywhere('event.read');
  const [tasks, setTasks] = useState<TaskRow[]>([]);
  const [recent, setRecent] = useState<ZenithEvent[]>([]);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    const fail = (failure: unknown) => {
      if (!abort.signal.aborted)
        setError(failure instanceof ApiError ? failure.reason : String(failure));
    };
    client
      .call<{ items: TaskRow[] }>('GET', `/tasks?limit=${shown}`, undefined, abort.signal)
      .then((answer) => setTasks(answer.items))
      .catch(fail);
    if (mayReadEvents)
      client
        .call<{ items: ZenithEvent[] }>('GET', `/events?limit=${shown}`, undefined, abort.signal)
        .then((answer) =>
          setRecent((now) => {
            const known = new Set(now.map((e) => e.seq));
            return [...now, ...[...answer.items].reverse().filter((e) => !known.has(e.seq))]
              .sort((a, b) => b.seq - a.seq)
              .slice(0, 100);
          }),
        )
        .catch(fail);
    return () => abort.abort();
  }, [client, mayReadEvents]);

  useEffect(
    () =>
      events.subscribe((event) => {
        setRecent((now) =>
          now.some((e) => e.seq === event.seq) ? now : [event, ...now].slice(0, 100),
        );
        if (!event.type.startsWith('task.') || !event.objectId) return;
        client
          .call<TaskRow>('GET', `/tasks/${encodeURIComponent(event.objectId)}`)
          .then((fresh) =>
            setTasks((now) =>
              now.some((t) => t.id === fresh.id)
                ? now.map((t) => (t.id === fresh.id ? fresh : t))
                : [fresh, ...now].slice(0, shown),
            ),
          )
          .catch(() => undefined);
      }),
    [client, events],
  );

  return (
    <Stack>
      <Title order={2}>Tasks and events</Title>
      <ErrorAlert title="Could not be loaded" error={error} />
      <Grid>
        <Grid.Col span={{ base: 12, xl: 7 }}>
          <Title order={3}>Recent tasks</Title>
          <Table aria-label="Recent tasks" striped>
            <TableHead columns={['Task', 'On', 'State', 'Progress', 'Created']} />
            <Table.Tbody>
              {tasks.map((task) => (
                <Table.Tr key={task.id} data-task-id={task.id}>
                  <Table.Td>{task.kind}</Table.Td>
                  <Table.Td>
                    <ObjectLink id={task.targetId} name={targetName(task)} />
                  </Table.Td>
                  <Table.Td miw={110}>
                    <Badge color={stateColor[task.state] ?? 'gray'} variant="light">
                      {task.state}
                    </Badge>
                    {task.error && (
                      <Text size="xs" c="red">
                        {task.error.code}: {task.error.message}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td miw={120}>
                    <Progress value={task.progress} aria-label={`Progress of ${task.kind}`} />
                    {task.progressMessage && <Text size="xs">{task.progressMessage}</Text>}
                  </Table.Td>
                  <Table.Td>{time(task.createdAt)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          {tasks.length === 0 && <Text c="dimmed">No tasks yet.</Text>}
        </Grid.Col>
        <Grid.Col span={{ base: 12, xl: 5 }}>
          <Title order={3}>Recent events</Title>
          <Table aria-label="Recent events" striped>
            <TableHead columns={['#', 'Event', 'Object', 'At']} />
            <Table.Tbody>
              {recent.map((event) => (
                <Table.Tr key={event.seq}>
                  <Table.Td>{event.seq}</Table.Td>
                  <Table.Td>{event.type}</Table.Td>
                  <Table.Td>
                    <ObjectLink id={event.objectId} name={eventObjectName(event)} />
                  </Table.Td>
                  <Table.Td>{time(event.ts)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Grid.Col>
      </Grid>
    </Stack>
  );
}
