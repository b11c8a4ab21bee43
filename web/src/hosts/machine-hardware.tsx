/** A machine's hardware as its BMC describes it (the `hardware.*` facts), one row per part. */
import { Table, Text } from '@mantine/core';
import type { FactValue, ManagedObject } from '../api/types.ts';
import { formatBytes } from '../pages/inventory-page.tsx';

function text(value: FactValue | undefined): string {
  if (value === undefined || value === null || value === '') return '—';
  return String(value);
}

function list(value: FactValue | undefined): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

function cpus(facts: ManagedObject['facts']): string {
  const parts = [
    typeof facts['hardware.cpuSockets'] === 'number' ? `${facts['hardware.cpuSockets']} ×` : '',
    typeof facts['hardware.cpuModel'] === 'string' ? facts['hardware.cpuModel'] : '',
  ].filter(Boolean);
  const counts = [
    typeof facts['hardware.cpuCores'] === 'number' ? `${facts['hardware.cpuCores']} cores` : '',
    typeof facts['hardware.cpuThreads'] === 'number'
      ? `${facts['hardware.cpuThreads']} threads`
      : '',
  ].filter(Boolean);
  const described = [parts.join(' '), counts.join(', ')].filter(Boolean).join(' · ');
  return described || '—';
}

/** Several values, one per line (NIC MACs, disks, memory modules). */
function Lines(props: { values: string[] }) {
  if (props.values.length === 0) return <>—</>;
  return (
    <>
      {props.values.map((value) => (
        <Text key={value} size="sm" ff={/^[0-9a-f:]+$/.test(value) ? 'monospace' : 'text'}>
          {value}
        </Text>
      ))}
    </>
  );
}

export function MachineHardware(props: { machine: ManagedObject }) {
  const { facts } = props.machine;
  const modules = list(facts['hardware.memoryModules']);
  const disks = list(facts['hardware.disks']);
  const rows: Array<[string, React.ReactNode]> = [
    [
      'Vendor and model',
      [facts['hardware.vendor'], facts['hardware.model']]
        .filter((v) => typeof v === 'string' && v)
        .join(' ') || '—',
    ],
    ['Serial number', text(facts['hardware.serial'])],
    ['SMBIOS UUID', text(facts['hardware.smbiosUuid'])],
    ['BIOS version', text(facts['hardware.biosVersion'])],
    ['BMC firmware', text(facts['hardware.bmcFirmware'])],
    ['CPUs', cpus(facts)],
    [
      'Memory',
      `${formatBytes(facts['hardware.memoryBytes'])}${
        modules.length > 0 ? ` in ${modules.length} module${modules.length === 1 ? '' : 's'}` : ''
      }`,
    ],
    ['NIC MACs', <Lines values={list(facts['hardware.nicMacs'])} />],
    [
      'Disks',
      <>
        <Lines values={disks} />
        {disks.length > 1 && (
          <Text size="sm" c="dimmed">
            {formatBytes(facts['hardware.diskBytes'])} in all
          </Text>
        )}
      </>,
    ],
  ];
  return (
    <Table aria-label="Hardware" withRowBorders={false}>
      <Table.Tbody>
        {rows.map(([label, value]) => (
          <Table.Tr key={label}>
            <Table.Th scope="row" w={160}>
              {label}
            </Table.Th>
            <Table.Td
              style={{ overflowWrap: 'anywhere' }}
              data-testid={`hardware-${label.toLowerCase().replaceAll(' ', '-')}`}
            >
              {value}
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
