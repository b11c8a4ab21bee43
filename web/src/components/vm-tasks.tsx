/**
 * The VM's recent tasks, newest first, kept live: a task.* event about this VM (or about a task
 * already listed, such as its progress) fetches the list again.
 */
import { Badge, Progress, Table, Text } from '@mantine/core';
import { useCallback, useRef, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import { tasksOfVm } from '../api/vm-calls.ts';
import { isTaskEvent } from '../api/events.ts';
import type { TaskDetail } from '../api/vm-types.ts';
import { TableHead } from './table-head.tsx';
import { useLiveLoad } from './use-live-load.ts';

const stateColors: Record<string, string> = {
  queued: 'gray',
  running: 'blue',
  succeeded: 'green',
  failed: 'red',
  cancelled: 'yellow',
};

export function VmTasks(props: { vmId: string; client: ApiClient; events: EventStream }) {
  const { vmId, client, events } = props;
  const [tasks, setTasks] = useState<TaskDetail[]>([]);
  const [error, setError] = useState<string | null>(null);
  const known = useRef(new Set<string>());
  // One fetch at a time; an event during a fetch asks for one more after it.
  const fetching = useRef<'idle' | 'busy' | 'again'>('idle');

  const load = useCallback(async () => {
    if (fetching.current !== 'idle') {
      fetching.current = 'again';
      return;
    }
    fetching.current = 'busy';
    try {
      const items = await tasksOfVm(client, vmId);
      known.current = new Set(items.map((task) => task.id));
      setTasks(items);
      setError(null);
    } catch (failure) {
      setError(reasonOf(failure));
    }
    // An event may have asked again while this fetch ran.
    const again = (fetching.current as string) === 'again';
    fetching.current = 'idle';
    if (again) await load();
  }, [client, vmId]);

  useLiveLoad(events, load, (event) => {
    if (!isTaskEvent(event)) return false;
    const about = event.type !== 'task.progress' && event.data.targetId === vmId;
    return about || (event.objectId !== null && known.current.has(event.objectId));
  });

  if (error) return <Text c="red">{error}</Text>;
  if (tasks.length === 0) return <Text c="dimmed">No tasks yet.</Text>;
  return (
    <Table aria-label="Tasks of this VM">
      <TableHead columns={['Task', 'State', 'Progress', 'Started', 'Outcome']} />
      <Table.Tbody>
        {tasks.map((task) => (
          <Table.Tr key={task.id} data-task-kind={task.kind}>
            <Table.Td>{task.kind}</Table.Td>
            <Table.Td>
              <Badge color={stateColors[task.state] ?? 'gray'} variant="light">
                {task.state}
              </Badge>
            </Table.Td>
            <Table.Td miw={120}>
              <Progress value={task.progress} aria-label={`${task.kind} progress`} />
              {task.state === 'running' && task.progressMessage && (
                <Text size="xs">{task.progressMessage}</Text>
              )}
            </Table.Td>
            <Table.Td>{new Date(task.startedAt ?? task.createdAt).toLocaleTimeString()}</Table.Td>
            <Table.Td>
              {task.error
                ? `${task.error.code}: ${task.error.message}`
                : task.state === 'succeeded'
                  ? 'done'
                  : ''}
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
