import { Badge } from '@mantine/core';
import type { FactValue } from '../api/types.ts';

const colors: Record<string, string> = {
  running: 'green',
  stopped: 'gray',
  suspended: 'yellow',
  paused: 'yellow',
};

export function PowerStateBadge(props: { state: FactValue | undefined }) {
  const state = typeof props.state === 'string' ? props.state : 'unknown';
  return (
    <Badge color={colors[state] ?? 'blue'} variant="light" data-testid="power-state">
      {state}
    </Badge>
  );
}
