/**
 * Each VM's protection, filtered by state, priority and words of its name or reason, in the order
 * a failover would start them (order group, then priority), the VMs that need a look first. At
 * most the first 200 matches are drawn; the count says how many there are.
 */
import { Group, NativeSelect, Table, Text, TextInput } from '@mantine/core';
import type { HaHostView, HaVmView } from '../api/ha-calls.ts';
import { ObjectLink } from '../components/object-link.tsx';
import { HaVmStateBadge } from './ha-badges.tsx';
import { clock } from './ha-format.ts';
import { TableHead } from '../components/table-head.tsx';

const shown = 200;
/** The contract's states (a record, so a state it adds is missed here at compile time). */
const stateSet: Record<HaVmView['state'], true> = {
  protected: true,
  unprotected: true,
  restarting: true,
  waiting: true,
  'vsphere-ha': true,
  'monitoring-limit': true,
};
/** Every state, in the contract's order (the HA page's counts follow it). */
export const haVmStates = Object.keys(stateSet) as Array<HaVmView['state']>;
export const priorities = ['highest', 'high', 'medium', 'low', 'lowest', 'disabled'];
const attention: Record<HaVmView['state'], number> = {
  'monitoring-limit': 0,
  waiting: 0,
  restarting: 1,
  unprotected: 2,
  protected: 3,
  'vsphere-ha': 4,
};

export interface VmFilter {
  state: HaVmView['state'] | '';
  priority: string;
  text: string;
}

export function filterVms(vms: HaVmView[], filter: VmFilter): HaVmView[] {
  const text = filter.text.trim().toLowerCase();
  return vms
    .filter(
      (vm) =>
        (!filter.state || vm.state === filter.state) &&
        (!filter.priority || vm.priority === filter.priority) &&
        (!text ||
          vm.name.toLowerCase().includes(text) ||
          (vm.reason ?? '').toLowerCase().includes(text)),
    )
    .sort(
      (a, b) =>
        attention[a.state] - attention[b.state] ||
        a.restartOrder - b.restartOrder ||
        priorities.indexOf(a.priority) - priorities.indexOf(b.priority) ||
        a.name.localeCompare(b.name),
    );
}

export function HaVmFilterBar(props: { filter: VmFilter; onChange: (next: VmFilter) => void }) {
  const { filter, onChange } = props;
  return (
    <Group align="flex-end">
      <NativeSelect
        label="Protection"
        value={filter.state}
        data={[{ value: '', label: 'Any' }, ...haVmStates.map((s) => ({ value: s, label: s }))]}
        onChange={(event) =>
          onChange({ ...filter, state: event.currentTarget.value as VmFilter['state'] })
        }
      />
      <NativeSelect
        label="Restart priority"
        value={filter.priority}
        data={[{ value: '', label: 'Any' }, ...priorities]}
        onChange={(event) => onChange({ ...filter, priority: event.currentTarget.value })}
      />
      <TextInput
        label="Name or reason contains"
        value={filter.text}
        onChange={(event) => onChange({ ...filter, text: event.currentTarget.value })}
      />
    </Group>
  );
}

export function HaVmsTable(props: { vms: HaVmView[]; hosts: HaHostView[] }) {
  const hostNames = new Map(props.hosts.map((h) => [h.hostId, h.name]));
  const rows = props.vms.slice(0, shown);
  return (
    <>
      <Table aria-label="VM protection" striped>
        <TableHead
          columns={['VM', 'Protection', 'Reason', 'Priority', 'Order group', 'Host', 'Described']}
        />
        <Table.Tbody>
          {rows.map((vm) => (
            <Table.Tr key={vm.vmId} data-vm={vm.name}>
              <Table.Td>
                <ObjectLink id={vm.vmId} name={vm.name} />
              </Table.Td>
              <Table.Td>
                <HaVmStateBadge state={vm.state} />
              </Table.Td>
              <Table.Td>
                <Text size="sm" maw={420}>
                  {vm.reason ?? '—'}
                </Text>
              </Table.Td>
              <Table.Td>{vm.priority}</Table.Td>
              <Table.Td>{vm.restartOrder}</Table.Td>
              <Table.Td>
                <ObjectLink
                  id={vm.hostId}
                  name={vm.hostId ? (hostNames.get(vm.hostId) ?? null) : null}
                />
              </Table.Td>
              <Table.Td>
                {vm.describedAt === null ? (
                  <Text size="sm" c="dimmed">
                    not yet
                  </Text>
                ) : (
                  <Text size="sm">{clock(vm.describedAt)}</Text>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <Text size="sm" c="dimmed">
        {props.vms.length === 0
          ? 'No VM matches.'
          : props.vms.length > shown
            ? `The first ${shown} of ${props.vms.length} VMs.`
            : `${props.vms.length} VM${props.vms.length === 1 ? '' : 's'}.`}
      </Text>
    </>
  );
}
