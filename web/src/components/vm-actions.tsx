/**
 * Actions on one VM, offered only when the role grants them and the VM's connection supports
 * them: power actions run at once; clone, rename, reconfigure, migrate and delete open a dialog.
 * Each answers a task, followed on the event stream; a refusal shows its code and message.
 */
import { Button, Group } from '@mantine/core';
import { useState } from 'react';
import type { ApiClient, VmAction } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import type { ManagedObject } from '../api/types.ts';
import type { Permission } from '../permissions.ts';
import { CloneDialog } from './clone-dialog.tsx';
import { DeleteVmDialog } from './delete-vm-dialog.tsx';
import { MigrateDialog } from './migrate-dialog.tsx';
import { TaskRunStatus } from './task-run-status.tsx';
import { useTaskRunner } from './use-task-runner.ts';
import { ReconfigureDialog, RenameDialog } from './vm-edit-dialogs.tsx';

const powerActions: Array<{ action: VmAction | 'shutdown'; label: string }> = [
  { action: 'start', label: 'Start' },
  { action: 'shutdown', label: 'Shut down' },
  { action: 'stop', label: 'Stop' },
  { action: 'reboot', label: 'Reboot' },
  { action: 'reset', label: 'Reset' },
  { action: 'suspend', label: 'Suspend' },
  { action: 'resume', label: 'Resume' },
];

type Dialog = 'clone' | 'rename' | 'reconfigure' | 'migrate' | 'delete' | null;

export function VmActions(props: {
  vm: ManagedObject;
  client: ApiClient;
  events: EventStream;
  can: (permission: Permission) => boolean;
  /** The connection's capabilities; null when unknown (then the server's refusal explains). */
  capabilities: ReadonlySet<string> | null;
}) {
  const { vm, client, events, can, capabilities } = props;
  const { run, start } = useTaskRunner(client, events);
  const [dialog, setDialog] = useState<Dialog>(null);
  const supports = (capability: string) => capabilities === null || capabilities.has(capability);

  const power = can('vm.power')
    ? powerActions.filter(({ action }) => supports(`vm.${action}`))
    : [];
  const more: Array<{ dialog: Exclude<Dialog, null>; label: string; shown: boolean }> = [
    { dialog: 'clone', label: 'Clone…', shown: can('vm.create') && supports('vm.clone') },
    { dialog: 'rename', label: 'Rename…', shown: can('vm.create') && supports('vm.rename') },
    {
      dialog: 'reconfigure',
      label: 'Reconfigure…',
      shown: can('vm.create') && supports('vm.reconfigure'),
    },
    // Migration between hosts of different connections needs no driver capability of its own:
    // the placement preview in the dialog says where the VM can go.
    { dialog: 'migrate', label: 'Migrate…', shown: can('vm.migrate') },
    { dialog: 'delete', label: 'Delete…', shown: can('vm.delete') && supports('vm.delete') },
  ];
  const offered = more.filter((entry) => entry.shown);
  if (power.length === 0 && offered.length === 0) return null;

  const close = () => setDialog(null);
  const common = { vm, client, events, onClose: close };
  return (
    <div>
      <Group role="group" aria-label={`Actions on ${vm.name}`} gap="xs">
        {power.map(({ action, label }) => (
          <Button
            key={action}
            variant="light"
            loading={run?.state === 'pending' && run.label === label}
            onClick={() =>
              void start(label, () =>
                client.call('POST', `/vms/${encodeURIComponent(vm.id)}/${action}`),
              )
            }
          >
            {label}
          </Button>
        ))}
        {offered.map((entry) => (
          <Button
            key={entry.dialog}
            {...(entry.dialog === 'delete'
              ? { variant: 'outline', color: 'red' }
              : { variant: 'default' })}
            onClick={() => setDialog(entry.dialog)}
          >
            {entry.label}
          </Button>
        ))}
      </Group>
      <TaskRunStatus run={run} />
      {dialog === 'clone' && <CloneDialog {...common} />}
      {dialog === 'rename' && <RenameDialog {...common} />}
      {dialog === 'reconfigure' && <ReconfigureDialog {...common} />}
      {dialog === 'migrate' && <MigrateDialog {...common} />}
      {dialog === 'delete' && <DeleteVmDialog {...common} />}
    </div>
  );
}
