/**
 * Simulated hosts and VMs are labelled wherever the console shows them: a simulated fleet exists
 * for trying Zenith out and for scale tests, and must never pass for real machines.
 */
import { Badge } from '@mantine/core';

export function SimulatedBadge(props: { simulated: boolean | undefined }) {
  if (!props.simulated) return null;
  return (
    <Badge color="grape" variant="outline" size="sm" title="A simulated object, not a real machine">
      simulated
    </Badge>
  );
}
