/**
 * How HA states read wherever the console shows them: a host's detector state, a VM's
 * protection, a failover's and a restart's state, and a fencing method, each a badge whose colour
 * says how bad it is and whose title says what it means.
 */
import { Badge } from '@mantine/core';
import type { FailoverView, HaHostView, HaVmView, RestartView } from '../api/ha-calls.ts';

const hostColors: Record<HaHostView['state'], string> = {
  healthy: 'green',
  suspect: 'yellow',
  isolated: 'orange',
  failed: 'red',
  unprotected: 'gray',
  'vsphere-ha': 'teal',
};
const hostMeaning: Record<HaHostView['state'], string> = {
  healthy: 'its channel answers',
  suspect: 'its channel is silent, not yet for the detection time',
  isolated: 'its channel is silent but its storage heartbeat goes on: cut off, nothing restarts',
  failed: 'its channel and its storage heartbeat stopped: its VMs fail over',
  unprotected: 'HA does not watch it',
  'vsphere-ha':
    "vSphere HA protects it (its cluster's HA in vCenter); Zenith's HA does not watch it",
};

export function HaHostStateBadge(props: {
  state: HaHostView['state'];
  size?: 'sm' | 'md';
  /** Words before the state where the page does not say it is about HA ("HA"). */
  prefix?: string;
}) {
  return (
    <Badge
      color={hostColors[props.state]}
      variant="light"
      size={props.size ?? 'md'}
      title={`HA: ${hostMeaning[props.state]}`}
      data-testid="ha-host-state"
    >
      {props.prefix ? `${props.prefix} ${props.state}` : props.state}
    </Badge>
  );
}

const vmColors: Record<HaVmView['state'], string> = {
  protected: 'green',
  unprotected: 'gray',
  restarting: 'blue',
  waiting: 'orange',
  'vsphere-ha': 'teal',
  'monitoring-limit': 'red',
};

export function HaVmStateBadge(props: { state: HaVmView['state']; reason?: string | null }) {
  return (
    <Badge
      color={vmColors[props.state]}
      variant="light"
      title={props.reason ?? undefined}
      data-testid="ha-vm-state"
    >
      {props.state}
    </Badge>
  );
}

/** The words for a fencing method, as the host status and a failover record name it. */
export function fencingLabel(method: string | null): string {
  switch (method) {
    case 'bmc':
      return 'BMC';
    case 'self-fence':
      return 'self-fence';
    case 'vsphere-ha':
      return 'vSphere HA';
    case 'released':
      return 'released by its agent';
    case null:
      return 'not yet';
    default:
      return method;
  }
}

const fencingMeaning: Record<HaHostView['fencing'], string> = {
  bmc: 'powered off through its BMC, the power read back off, before its VMs restart',
  'self-fence': 'its VMs restart once its storage lease is stale past the self-fencing deadline',
  'vsphere-ha':
    'vSphere HA isolates and restarts it by its own means (isolation response, datastore heartbeats)',
  none: 'it cannot be fenced, so its VMs would not restart',
};

export function FencingBadge(props: { fencing: HaHostView['fencing']; size?: 'sm' | 'md' }) {
  return (
    <Badge
      color={props.fencing === 'none' ? 'orange' : 'indigo'}
      variant="light"
      size={props.size ?? 'md'}
      title={`Fencing: ${fencingMeaning[props.fencing]}`}
      data-testid="ha-fencing"
    >
      fencing {fencingLabel(props.fencing)}
    </Badge>
  );
}

const runColors: Record<string, string> = {
  done: 'green',
  running: 'green',
  fencing: 'yellow',
  restarting: 'blue',
  starting: 'blue',
  pending: 'gray',
  skipped: 'gray',
  waiting: 'orange',
  failed: 'red',
};

export function FailoverStateBadge(props: { state: FailoverView['state'] | RestartView['state'] }) {
  return (
    <Badge color={runColors[props.state] ?? 'gray'} variant="light">
      {props.state}
    </Badge>
  );
}
