/** What became of the last action: its progress while it runs, then done or the coded refusal. */
import { Alert, Progress, Stack, Table, Text } from '@mantine/core';
import type { TaskRun } from './use-task-runner.ts';

export function TaskRunStatus(props: { run: TaskRun | null; showDetails?: boolean }) {
  const { run } = props;
  return (
    <div aria-live="polite">
      {run?.state === 'pending' && (
        <Stack gap={4} mt="xs">
          <Text size="sm">
            {run.label}: {run.task ? run.task.state : 'asking'}
            {run.task?.progressMessage ? ` — ${run.task.progressMessage}` : ''}
          </Text>
          <Progress value={run.task?.progress ?? 0} aria-label={`${run.label} progress`} animated />
          {props.showDetails && run.task?.progressDetails && (
            <TaskDetails details={run.task.progressDetails} />
          )}
        </Stack>
      )}
      {run?.state === 'succeeded' && (
        <Text size="sm" mt="xs">
          {run.label} done.
        </Text>
      )}
      {run?.state === 'refused' && (
        <Alert color="red" role="alert" mt="xs" title={`${run.label} refused`}>
          {run.reason}
        </Alert>
      )}
    </div>
  );
}

export function TaskDetails(props: { details: Record<string, number | string> }) {
  return (
    <Table aria-label="Task progress details" withRowBorders={false} fz="xs">
      <Table.Tbody>
        {Object.entries(props.details).map(([key, value]) => (
          <Table.Tr key={key}>
            <Table.Th scope="row">{key}</Table.Th>
            <Table.Td>{String(value)}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
