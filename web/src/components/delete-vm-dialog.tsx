/** Delete a VM: the person types its name to confirm; once deleted, back to the VM list. */
import { Button, Modal, Stack, Text } from '@mantine/core';
import { useState } from 'react';
import { deleteVm } from '../api/vm-calls.ts';
import { hrefOf } from '../hash-route.ts';
import { TaskRunStatus } from './task-run-status.tsx';
import { useTaskRunner } from './use-task-runner.ts';
import type { VmDialogProps } from './vm-dialog.ts';
import { NameConfirmation } from './name-confirmation.tsx';
import { DialogButtons } from './dialog-buttons.tsx';

export function DeleteVmDialog(props: VmDialogProps) {
  const { vm, client, events, onClose } = props;
  const [typed, setTyped] = useState('');
  const { run, start } = useTaskRunner(client, events);
  const confirmed = typed === vm.name;

  return (
    <Modal opened onClose={onClose} title={`Delete ${vm.name}`}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (!confirmed) return;
          void start('Delete', () => deleteVm(client, vm.id)).then((task) => {
            if (task) window.location.hash = hrefOf.inventory;
          });
        }}
      >
        <Stack>
          <Text size="sm">
            The VM and its disks are deleted for good. It must be stopped first.
          </Text>
          <NameConfirmation name={vm.name} value={typed} onChange={setTyped} autoFocus />
          <TaskRunStatus run={run} />
          <DialogButtons onDismiss={onClose} dismissLabel="Cancel">
            <Button
              type="submit"
              color="red"
              disabled={!confirmed}
              loading={run?.state === 'pending'}
            >
              Delete VM
            </Button>
          </DialogButtons>
        </Stack>
      </form>
    </Modal>
  );
}
