/**
 * vSphere clusters' HA as vCenter reports it, read-only: vSphere HA on or off, host monitoring,
 * admission control, VM monitoring, the default restart priority and isolation response, and each
 * host's state as vSphere HA's agent reports it (master, connectedToMaster, hostDown, …). Zenith
 * runs no HA of its own there; it is changed in vCenter.
 */
import { Badge, Group, Table, Text } from '@mantine/core';
import type { VsphereHaClusterView } from '../api/ha-calls.ts';
import { ObjectLink } from '../components/object-link.tsx';
import { TableHead } from '../components/table-head.tsx';

/** vSphere HA's admission control in a few words: off, or its policy and figures. */
export function admissionText(control: VsphereHaClusterView['admissionControl']): string {
  if (!control.enabled) return 'off';
  switch (control.policy) {
    case 'hostFailures':
      return `tolerate ${control.hostFailuresToTolerate ?? '?'} host failure(s)`;
    case 'resourcePercentage':
      return `reserve ${control.cpuFailoverPercent ?? '?'}% CPU, ${control.memoryFailoverPercent ?? '?'}% memory`;
    case 'failoverHosts':
      return `failover hosts: ${control.failoverHosts.join(', ')}`;
    default:
      return control.policy ?? 'on';
  }
}

/** A host's vSphere HA state: green when it is in the HA cluster's order, red when it is not. */
const stateColors: Record<string, string> = {
  master: 'green',
  connectedToMaster: 'green',
  election: 'yellow',
  uninitialized: 'gray',
  networkPartitionedFromMaster: 'orange',
  networkIsolated: 'orange',
  hostDown: 'red',
  fdmUnreachable: 'red',
  initializationError: 'red',
  uninitializationError: 'red',
};

export function VsphereHaClusters(props: { clusters: VsphereHaClusterView[] }) {
  return (
    <Table aria-label="vSphere clusters" striped>
      <TableHead
        columns={[
          'Cluster',
          'vSphere HA',
          'Host monitoring',
          'Admission control',
          'VM monitoring',
          'Restart priority',
          'Isolation response',
          'Hosts',
        ]}
      />
      <Table.Tbody>
        {props.clusters.map((cluster) => (
          <Table.Tr key={cluster.clusterId} data-cluster={cluster.name}>
            <Table.Td>
              <ObjectLink id={cluster.clusterId} name={cluster.name} />
            </Table.Td>
            <Table.Td>
              <Badge
                color={cluster.enabled ? 'teal' : 'gray'}
                variant="light"
                title="vSphere HA, set in vCenter: Zenith shows it and does not act on these hosts"
                data-testid="vsphere-ha-enabled"
              >
                {cluster.enabled ? 'on' : 'off'}
              </Badge>
            </Table.Td>
            <Table.Td>{cluster.hostMonitoring ?? '—'}</Table.Td>
            <Table.Td data-testid="vsphere-ha-admission">
              {admissionText(cluster.admissionControl)}
            </Table.Td>
            <Table.Td>{cluster.vmMonitoring ?? '—'}</Table.Td>
            <Table.Td>{cluster.restartPriority ?? '—'}</Table.Td>
            <Table.Td>{cluster.isolationResponse ?? '—'}</Table.Td>
            <Table.Td>
              <Group gap={4}>
                {cluster.hosts.length === 0 && <Text c="dimmed">none</Text>}
                {cluster.hosts.map((host) => (
                  <Badge
                    key={host.hostId}
                    color={host.state ? (stateColors[host.state] ?? 'gray') : 'gray'}
                    variant="light"
                    data-host={host.name}
                    title={`${host.name}: ${host.state ?? 'vSphere HA is not configured on it'}`}
                  >
                    {host.name}: {host.state ?? '—'}
                  </Badge>
                ))}
              </Group>
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
