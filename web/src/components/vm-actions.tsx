/**
 * Power actions on one VM, offered only to a role that grants vm.power. Each click asks the API;
 * the answer is a task, followed on the event stream until it ends. A refusal, up front or by
 * the task, shows its code and message.
 */
import { Alert, Button, Group, Text } from '@mantine/core';
import { useEffect, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient, VmAction } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';

const actions: Array<{ action: VmAction; label: string }> = [
  { action: 'start', label: 'Start' },
  { action: 'stop', label: 'Stop' },
  { action: 'suspend', label: 'Suspend' },
  { action: 'resume', label: 'Resume' },
  { action: 'reboot', label: 'Reboot' },
];

type Outcome =
  | { state: 'pending'; action: VmAction; taskId: string }
  | { state: 'succeeded'; action: VmAction }
  | { state: 'refused'; action: VmAction; reason: string };

export function VmActions(props: {
  vmId: string;
  vmName: string;
  client: ApiClient;
  events: EventStream;
}) {
  const { vmId, vmName, client, events } = props;
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const pendingTask = outcome?.state === 'pending' ? outcome.taskId : null;

  useEffect(() => {
    if (!pendingTask || outcome?.state !== 'pending') return;
    const { action } = outcome;
    const settle = (state: string, error: { code: string; message: string } | null) => {
      if (state === 'succeeded') setOutcome({ state: 'succeeded', action });
      else if (['failed', 'cancelled'].includes(state))
        setOutcome({
          state: 'refused',
          action,
          reason: error ? `${error.code}: ${error.message}` : `the task was ${state}`,
        });
    };
    const unsubscribe = events.subscribe((event) => {
      if (event.objectId !== pendingTask || !event.type.startsWith('task.')) return;
      const error = (event.data?.error ?? null) as { code: string; message: string } | null;
      settle(event.type.slice('task.'.length), error);
    });
    // The task may have ended before this subscription: ask once.
    client
      .getTask(pendingTask)
      .then((task) => settle(task.state, task.error))
      .catch(() => undefined);
    return unsubscribe;
  }, [client, events, pendingTask, outcome]);

  const run = async (action: VmAction) => {
    try {
      const task = await client.requestVmAction(vmId, action);
      setOutcome({ state: 'pending', action, taskId: task.id });
    } catch (failure) {
      setOutcome({
        state: 'refused',
        action,
        reason: failure instanceof ApiError ? failure.reason : String(failure),
      });
    }
  };

  return (
    <div>
      <Group role="group" aria-label={`Actions on ${vmName}`}>
        {actions.map(({ action, label }) => (
          <Button
            key={action}
            variant="light"
            loading={outcome?.state === 'pending' && outcome.action === action}
            onClick={() => void run(action)}
          >
            {label}
          </Button>
        ))}
      </Group>
      <div aria-live="polite">
        {outcome?.state === 'succeeded' && (
          <Text size="sm" mt="xs">
            {actions.find((a) => a.action === outcome.action)?.label} done.
          </Text>
        )}
        {outcome?.state === 'refused' && (
          <Alert color="red" role="alert" mt="xs" title={`${outcome.action} refused`}>
            {outcome.reason}
          </Alert>
        )}
      </div>
    </div>
  );
}
