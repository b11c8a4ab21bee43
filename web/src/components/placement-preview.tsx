/**
 * A placement preview as a person reads it: the candidate hosts ranked by score (the best is
 * placement's own choice), one of which may be picked, and every rejected host with the check
 * or policy that rejected it.
 */
import { Badge, Radio, Stack, Table, Text, Title } from '@mantine/core';
import type { PlacementDecision } from '../api/vm-types.ts';
import { TableHead } from './table-head.tsx';

const percent = (load: number) => `${Math.round(load * 100)} %`;

export function PlacementPreview(props: {
  decision: PlacementDecision;
  selected: string | null;
  onSelect: (hostId: string) => void;
}) {
  const { decision, selected, onSelect } = props;
  return (
    <Stack gap="xs">
      <Text size="sm">
        {decision.feasibleHosts} of {decision.hostsConsidered} hosts can take {decision.vm.name} (
        {decision.vm.cpu} vCPU, {Math.round(decision.vm.memoryBytes / 1048576)} MiB).
      </Text>
      <Title order={4}>Candidate hosts</Title>
      {decision.candidates.length === 0 ? (
        <Text c="dimmed" size="sm">
          No host can take it.
        </Text>
      ) : (
        <Radio.Group
          value={selected}
          onChange={onSelect}
          name="placement-host"
          aria-label="Target host"
        >
          <Table aria-label="Candidate hosts">
            <TableHead columns={['Choose', 'Host', 'Score', 'Load after']} />
            <Table.Tbody>
              {decision.candidates.map((candidate, rank) => (
                <Table.Tr key={candidate.hostId}>
                  <Table.Td>
                    <Radio value={candidate.hostId} aria-label={`Choose ${candidate.hostName}`} />
                  </Table.Td>
                  <Table.Td>
                    {candidate.hostName}{' '}
                    {rank === 0 && decision.chosen?.hostId === candidate.hostId && (
                      <Badge size="xs" variant="light">
                        placement&apos;s choice
                      </Badge>
                    )}
                  </Table.Td>
                  <Table.Td>{candidate.score.toFixed(3)}</Table.Td>
                  <Table.Td>{percent(candidate.loadAfter)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Radio.Group>
      )}
      {decision.rejected.length > 0 && (
        <>
          <Title order={4}>Rejected hosts</Title>
          <Table aria-label="Rejected hosts">
            <TableHead columns={['Host', 'Check', 'Why']} />
            <Table.Tbody>
              {decision.rejected.map((rejection) => (
                <Table.Tr key={rejection.hostId}>
                  <Table.Td>{rejection.hostName}</Table.Td>
                  <Table.Td>{rejection.reason.kind}</Table.Td>
                  <Table.Td>{rejection.reason.message}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </>
      )}
    </Stack>
  );
}
