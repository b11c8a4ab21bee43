/**
 * What marks a host wherever the console lists it: a machine linked to no hypervisor host is
 * "bare-metal" (placement puts no VM there), and a host with a machine under it shows the power
 * its BMC last read (the machine's own `hardware.power`, or the linked host's
 * `machine.hardware.power`). The machine section also shows its health and identify light.
 */
import { Badge } from '@mantine/core';
import type { FactValue, ManagedObject } from '../api/types.ts';

const powerColors: Record<string, string> = { on: 'green', off: 'gray' };
const healthColors: Record<string, string> = { ok: 'green', warning: 'orange', critical: 'red' };

/** The BMC's power reading of the host's machine; undefined for a host with no machine. */
export function machinePowerOf(host: ManagedObject): FactValue | undefined {
  return host.facts['hardware.power'] ?? host.computed['machine.hardware.power'];
}

export function MachinePowerBadge(props: { power: FactValue | undefined; size?: 'sm' | 'md' }) {
  const power = typeof props.power === 'string' ? props.power : 'unknown';
  return (
    <Badge
      color={powerColors[power] ?? 'blue'}
      variant="light"
      size={props.size ?? 'md'}
      title="Machine power, as its BMC reads it"
      data-testid="machine-power"
    >
      power {power}
    </Badge>
  );
}

export function MachineHealthBadge(props: { health: FactValue | undefined }) {
  const health = typeof props.health === 'string' ? props.health : 'unknown';
  return (
    <Badge
      color={healthColors[health] ?? 'blue'}
      variant="light"
      title="Machine health, as its BMC reports it"
      data-testid="machine-health"
    >
      health {health}
    </Badge>
  );
}

const identifyColors: Record<string, string> = { on: 'indigo', blinking: 'indigo', off: 'gray' };

/**
 * The identify light (`bmc.identify`): lit, blinking, off, or unknown. Its title says whether the
 * BMC reported it or it is what Zenith last set (IPMI BMCs that do not report it).
 */
export function MachineIdentifyBadge(props: {
  identify: FactValue | undefined;
  source: FactValue | undefined;
}) {
  const identify = typeof props.identify === 'string' ? props.identify : 'unknown';
  const title =
    props.source === 'zenith'
      ? 'Identify light, as Zenith last set it (this BMC does not report it)'
      : identify === 'unknown'
        ? 'Identify light: the BMC does not report it and Zenith has not set it'
        : 'Identify light, as its BMC reports it';
  return (
    <Badge
      color={identifyColors[identify] ?? 'blue'}
      variant="light"
      title={title}
      data-testid="machine-identify"
    >
      identify {identify}
    </Badge>
  );
}

export function BareMetalBadge(props: { host: ManagedObject; size?: 'sm' | 'md' }) {
  if (props.host.computed['host.mode'] !== 'bare-metal') return null;
  return (
    <Badge
      color="orange"
      variant="light"
      size={props.size ?? 'md'}
      title="A machine with no hypervisor host Zenith manages on it: no VM is placed here"
      data-testid="host-mode-badge"
    >
      bare-metal
    </Badge>
  );
}

/** The badges a host carries in lists and the tree (small), beside its name. */
export function HostBadges(props: { host: ManagedObject }) {
  const { host } = props;
  const power = machinePowerOf(host);
  return (
    <>
      <BareMetalBadge host={host} size="sm" />
      {power !== undefined && <MachinePowerBadge power={power} size="sm" />}
    </>
  );
}
