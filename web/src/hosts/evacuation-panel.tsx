/**
 * Maintenance mode of one host: enter (evacuate: every VM leaves by policy, in a planned order),
 * follow the plan's moves and the task's progress live, and exit. A move shows "moved" once its VM
 * is seen on the target host (the VM's inventory events), so the list fills in as the VMs move.
 */
import { Alert, Button, Group, Progress, Stack, Table, Text, Title } from '@mantine/core';
import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import type { ManagedObject, Task } from '../api/types.ts';
import { TableHead } from '../components/table-head.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';

interface PlannedMove {
  vmId: string;
  vmName: string;
  fromHostName: string;
  toHostId: string;
  toHostName: string;
  order: number;
  startMs: number;
  endMs: number;
}

interface Plan {
  id: string;
  state: string;
  moves: PlannedMove[];
  predictedCompletionMs: number;
  outcome?: { moves: Array<{ vmId: string; state: string }>; actualCompletionMs: number };
}

/** The evacuation's task (its params name the plan once there is one). */
type EvacuationTask = Task;

export function EvacuationPanel(props: {
  host: ManagedObject;
  client: ApiClient;
  events: EventStream;
  mayManage: boolean;
  onChanged: () => void;
}) {
  const { host, client, events, mayManage, onChanged } = props;
  const mode = String(host.computed['host.mode'] ?? 'normal');
  const [task, setTask] = useState<EvacuationTask | null>(null);
  const [plan, setPlan] = useState<Plan | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  /** Where each VM of the plan is now (VM id → host id). */
  const [vmHosts, setVmHosts] = useState(new Map<string, string | null>());

  const locate = useCallback(
    async (vmIds: string[]) => {
      const found = await Promise.all(
        vmIds.map((id) => client.call<ManagedObject>('GET', `/vms/${encodeURIComponent(id)}`)),
      );
      setVmHosts((now) => {
        const next = new Map(now);
        for (const vm of found)
          next.set(vm.id, (vm.computed['location.hostId'] as string | null) ?? null);
        return next;
      });
    },
    [client],
  );

  const planSeen = useRef<string | null>(null);
  const refresh = useCallback(
    async (taskId: string) => {
      const fresh = await client.call<EvacuationTask>('GET', `/tasks/${taskId}`);
      setTask(fresh);
      const ended = ['succeeded', 'failed', 'cancelled'].includes(fresh.state);
      // The plan once (where its VMs are, too), and again at the end for its outcome; between
      // the two, the VMs' own events say where they are.
      const planId = typeof fresh.params.planId === 'string' ? fresh.params.planId : undefined;
      if (planId && (planSeen.current !== planId || ended)) {
        const first = planSeen.current !== planId;
        planSeen.current = planId;
        const planned = await client.call<Plan>('GET', `/placement/plans/${planId}`);
        setPlan(planned);
        if (first || ended) await locate(planned.moves.map((m) => m.vmId));
      }
      if (ended) onChanged();
    },
    [client, onChanged, locate],
  );

  // Opened during (or after) an evacuation: find its plan and task, newest first.
  const hostIdOf = host.id;
  const entering = mode !== 'normal';
  useEffect(() => {
    if (!entering || task) return;
    client
      .call<{ items: Array<Plan & { hostId: string | null; taskId: string | null }> }>(
        'GET',
        '/placement/plans?kind=evacuation&limit=50',
      )
      .then(async (answer) => {
        const latest = answer.items.find((p) => p.hostId === hostIdOf && p.taskId);
        if (latest?.taskId) await refresh(latest.taskId);
      })
      .catch(() => undefined);
  }, [client, hostIdOf, entering, task, refresh]);

  // Follow the evacuation task: its progress events and its end.
  useEffect(() => {
    if (!task) return;
    const taskId = task.id;
    return events.subscribe((event) => {
      if (event.objectId !== taskId || !event.type.startsWith('task.')) return;
      void refresh(taskId).catch(() => undefined);
    });
  }, [events, task?.id, refresh]);

  // Follow the plan's VMs: each one's inventory events say where it is now.
  useEffect(() => {
    if (!plan) return;
    const planned = new Set(plan.moves.map((m) => m.vmId));
    return events.subscribe((event) => {
      if (!event.objectId || !planned.has(event.objectId)) return;
      if (!event.type.startsWith('inventory.')) return;
      void locate([event.objectId]).catch(() => undefined);
    });
  }, [events, plan, locate]);

  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (failure) {
      setError(failure instanceof ApiError ? failure.reason : String(failure));
    } finally {
      setBusy(false);
    }
  };

  const evacuate = () =>
    run(async () => {
      const started = await client.call<EvacuationTask>(
        'POST',
        `/hosts/${encodeURIComponent(host.id)}/evacuate`,
      );
      setTask(started);
      await refresh(started.id);
      onChanged();
    });
  const exit = () =>
    run(async () => {
      await client.call('POST', `/hosts/${encodeURIComponent(host.id)}/exit-maintenance`);
      setTask(null);
      setPlan(null);
      onChanged();
    });

  const done = plan ? plan.moves.filter((m) => vmHosts.get(m.vmId) === m.toHostId).length : 0;

  return (
    <Stack aria-label="Maintenance">
      <Title order={3}>Maintenance</Title>
      <Group>
        <Text>
          Mode: <strong data-testid="host-mode">{mode}</strong>
        </Text>
        {mayManage && mode === 'normal' && (
          <Button onClick={() => void evacuate()} loading={busy} color="orange" variant="light">
            Enter maintenance (evacuate)
          </Button>
        )}
        {mayManage && mode !== 'normal' && (
          <Button onClick={() => void exit()} loading={busy} variant="default">
            Exit maintenance
          </Button>
        )}
      </Group>
      <ErrorAlert title="Refused" error={error} />
      {task && (
        <Stack gap={4}>
          <Text size="sm">
            Evacuation {task.state}
            {task.progressMessage ? `: ${task.progressMessage}` : ''}
          </Text>
          <Progress value={task.progress} aria-label="Evacuation progress" size="lg" />
          {task.error && (
            <Alert color="red" role="alert" title="The evacuation failed">
              {task.error.code}: {task.error.message}
            </Alert>
          )}
        </Stack>
      )}
      {plan && (
        <>
          <Text size="sm">
            Migration plan {plan.id}: {plan.moves.length} moves, {done} done, predicted{' '}
            {(plan.predictedCompletionMs / 1000).toFixed(1)} s
            {plan.outcome ? `, took ${(plan.outcome.actualCompletionMs / 1000).toFixed(1)} s` : ''}
          </Text>
          <Table aria-label="Migration plan" striped>
            <TableHead columns={['#', 'VM', 'To host', 'Predicted', 'State']} />
            <Table.Tbody>
              {plan.moves.map((move) => {
                const outcome = plan.outcome?.moves.find((m) => m.vmId === move.vmId)?.state;
                const arrived = vmHosts.get(move.vmId) === move.toHostId;
                return (
                  <Table.Tr key={move.vmId}>
                    <Table.Td>{move.order + 1}</Table.Td>
                    <Table.Td>{move.vmName}</Table.Td>
                    <Table.Td>{move.toHostName}</Table.Td>
                    <Table.Td>
                      {(move.startMs / 1000).toFixed(1)}–{(move.endMs / 1000).toFixed(1)} s
                    </Table.Td>
                    <Table.Td>{outcome ?? (arrived ? 'moved' : 'waiting')}</Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </>
      )}
    </Stack>
  );
}
