/**
 * The header row of a console table from its column names, so that a table declares its columns
 * in one line. A column that is `false` is left out (an Actions column only for who may act).
 */
import { Table } from '@mantine/core';

export function TableHead(props: { columns: ReadonlyArray<string | false> }) {
  return (
    <Table.Thead>
      <Table.Tr>
        {props.columns.map(
          (column) => column !== false && <Table.Th key={column}>{column}</Table.Th>,
        )}
      </Table.Tr>
    </Table.Thead>
  );
}
