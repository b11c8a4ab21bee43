/**
 * What can be done to a machine through its BMC: power on, shut down, power off, power cycle,
 * reset, boot once from a device, the identify light (a toggle: the button offered turns it the
 * other way from what the BMC last read, both while that is unknown), and fencing. Offered only with `host.power`
 * on the host and where the BMC has the capability (machine.power, machine.boot,
 * machine.identify, machine.fence). The ones that stop what runs on the machine ask first, in a
 * dialog naming the host and what will happen. Each answers a task, followed until it ends; a
 * refusal shows its code and message.
 */
import { Button, Group, Menu, Modal, Stack, Text } from '@mantine/core';
import { useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import {
  bootMachineOnce,
  fenceMachine,
  identifyMachine,
  powerMachine,
  type MachineBootDevice,
  type MachinePowerAction,
} from '../api/machine-calls.ts';
import type { FactValue } from '../api/types.ts';
import type { TaskDetail } from '../api/vm-types.ts';
import { TaskRunStatus } from '../components/task-run-status.tsx';
import { useTaskRunner } from '../components/use-task-runner.ts';
import { DialogButtons } from '../components/dialog-buttons.tsx';

type Destructive = Exclude<MachinePowerAction, 'on'> | 'fence';

/** What each action that stops the machine does, as the confirmation says it. */
const consequences: Record<Destructive, { label: string; what: string }> = {
  shutdown: {
    label: 'Shut down',
    what: 'The BMC asks the operating system to shut down (ACPI). Everything running on the machine stops, its VMs with it.',
  },
  off: {
    label: 'Power off',
    what: 'The machine loses power at once, without shutting down: everything running on it, VMs included, stops abruptly and unsaved data is lost.',
  },
  cycle: {
    label: 'Power cycle',
    what: 'The machine is powered off at once and on again: everything running on it stops abruptly and it boots again.',
  },
  reset: {
    label: 'Reset',
    what: 'The machine restarts at once, without shutting down: everything running on it stops abruptly and it boots again.',
  },
  fence: {
    label: 'Fence',
    what: 'The machine is powered off and the BMC is read until it reports it off, so that nothing it ran can still be running (before its VMs are started elsewhere). The task fails if the BMC never confirms.',
  },
};

const bootDevices: Array<{ device: MachineBootDevice; label: string }> = [
  { device: 'pxe', label: 'Network (PXE)' },
  { device: 'disk', label: 'Disk' },
  { device: 'cdrom', label: 'CD-ROM' },
  { device: 'bios', label: 'BIOS setup' },
];

/** The identify actions to offer: the other way from the light's state, both while it is unknown. */
function identifyOffered(identify: FactValue | undefined): boolean[] {
  if (identify === 'on' || identify === 'blinking') return [false];
  if (identify === 'off') return [true];
  return [true, false];
}

export function MachineActions(props: {
  /** The host whose page this is (the machine, or the hypervisor host on it). */
  hostId: string;
  /** How the confirmation names the host (its name, and the machine's when it is another host). */
  hostLabel: string;
  client: ApiClient;
  events: EventStream;
  mayPower: boolean;
  capabilities: readonly string[];
  /** The identify light as last read (`bmc.identify`): on, blinking, off, or unknown. */
  identify: FactValue | undefined;
  /** A task ended: the machine may read differently now. */
  onTaskEnded: () => void;
}) {
  const { hostId, hostLabel, client, events, mayPower, capabilities, identify, onTaskEnded } =
    props;
  const { run, start } = useTaskRunner(client, events);
  const [confirming, setConfirming] = useState<Destructive | null>(null);
  if (!mayPower) return null;
  const has = (capability: string) => capabilities.includes(capability);
  if (!['power', 'boot', 'identify', 'fence'].some((c) => has(`machine.${c}`))) return null;

  const launch = async (label: string, request: () => Promise<TaskDetail>) => {
    await start(label, request);
    onTaskEnded();
  };
  const confirm = () => {
    const action = confirming;
    if (!action) return;
    setConfirming(null);
    const { label } = consequences[action];
    void launch(label, () =>
      action === 'fence' ? fenceMachine(client, hostId) : powerMachine(client, hostId, action),
    );
  };
  const pending = (label: string) => run?.state === 'pending' && run.label === label;

  return (
    <div>
      <Group role="group" aria-label={`Machine actions on ${hostLabel}`} gap="xs">
        {has('machine.power') && (
          <>
            <Button
              variant="light"
              loading={pending('Power on')}
              onClick={() => void launch('Power on', () => powerMachine(client, hostId, 'on'))}
            >
              Power on
            </Button>
            {(['shutdown', 'off', 'cycle', 'reset'] as const).map((action) => (
              <Button
                key={action}
                variant="light"
                color={action === 'shutdown' ? 'blue' : 'orange'}
                loading={pending(consequences[action].label)}
                onClick={() => setConfirming(action)}
              >
                {consequences[action].label}…
              </Button>
            ))}
          </>
        )}
        {has('machine.boot') && (
          <Menu position="bottom-start">
            <Menu.Target>
              <Button
                variant="default"
                loading={run?.state === 'pending' && run.label.startsWith('Boot once')}
              >
                Boot once from…
              </Button>
            </Menu.Target>
            <Menu.Dropdown aria-label="Boot once from">
              {bootDevices.map(({ device, label }) => (
                <Menu.Item
                  key={device}
                  onClick={() =>
                    void launch(`Boot once from ${label}`, () =>
                      bootMachineOnce(client, hostId, device),
                    )
                  }
                >
                  {label}
                </Menu.Item>
              ))}
            </Menu.Dropdown>
          </Menu>
        )}
        {has('machine.identify') &&
          identifyOffered(identify).map((on) => {
            const label = `Identify light ${on ? 'on' : 'off'}`;
            return (
              <Button
                key={label}
                variant="default"
                loading={pending(label)}
                onClick={() => void launch(label, () => identifyMachine(client, hostId, on))}
              >
                {label}
              </Button>
            );
          })}
        {has('machine.fence') && (
          <Button
            variant="outline"
            color="red"
            loading={pending('Fence')}
            onClick={() => setConfirming('fence')}
          >
            Fence…
          </Button>
        )}
      </Group>
      <TaskRunStatus run={run} />
      <Modal
        opened={confirming !== null}
        onClose={() => setConfirming(null)}
        closeButtonProps={{ 'aria-label': 'Close' }}
        title={confirming ? `${consequences[confirming].label} ${hostLabel}?` : ''}
      >
        <Stack>
          <Text size="sm">{confirming ? consequences[confirming].what : ''}</Text>
          <DialogButtons onDismiss={() => setConfirming(null)} dismissLabel="Cancel">
            <Button color="red" onClick={confirm} data-autofocus>
              {confirming ? consequences[confirming].label : ''}
            </Button>
          </DialogButtons>
        </Stack>
      </Modal>
    </div>
  );
}
