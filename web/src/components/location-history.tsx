import { Table } from '@mantine/core';
import type { LocationInterval } from '../api/types.ts';

const time = (ms: number) => new Date(ms).toLocaleString();

/** Where the VM ran, newest first, as the API answers it. */
export function LocationHistory(props: { intervals: LocationInterval[] }) {
  return (
    <Table aria-label="Location history">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Host</Table.Th>
          <Table.Th>Power state</Table.Th>
          <Table.Th>From</Table.Th>
          <Table.Th>Until</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {props.intervals.map((interval) => (
          <Table.Tr key={`${interval.from}-${interval.hostId ?? 'none'}`}>
            <Table.Td>{interval.hostName ?? '—'}</Table.Td>
            <Table.Td>{interval.powerState}</Table.Td>
            <Table.Td>{time(interval.from)}</Table.Td>
            <Table.Td>{interval.to === null ? 'now' : time(interval.to)}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
