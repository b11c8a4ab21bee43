/** Clone a stopped VM under a new name, its disks copied (full) or shared copy-on-write (linked). */
import { useInputState } from '@mantine/hooks';
import { Anchor, Button, Checkbox, Modal, Stack, TextInput } from '@mantine/core';
import { useState } from 'react';
import { cloneVm } from '../api/vm-calls.ts';
import { hrefOf } from '../hash-route.ts';
import { TaskRunStatus } from './task-run-status.tsx';
import { useTaskRunner } from './use-task-runner.ts';
import type { VmDialogProps } from './vm-dialog.ts';
import { DialogButtons } from './dialog-buttons.tsx';

export function CloneDialog(props: VmDialogProps) {
  const { vm, client, events, onClose } = props;
  const [name, setName] = useInputState(`${vm.name}-clone`);
  const [linked, setLinked] = useState(false);
  const { run, start } = useTaskRunner(client, events);
  const result = run?.state === 'succeeded' ? (run.task.result as { vmId?: string }) : null;

  return (
    <Modal opened onClose={onClose} title={`Clone ${vm.name}`}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void start('Clone', () => cloneVm(client, vm.id, { name: name.trim(), linked }));
        }}
      >
        <Stack>
          <TextInput
            label="Clone name"
            required
            maxLength={63}
            value={name}
            onChange={setName}
            data-autofocus
          />
          <Checkbox
            label="Linked clone (shares the source's disks copy-on-write: fast and small, but the source then cannot be started, changed or deleted while the clone exists)"
            checked={linked}
            onChange={(event) => setLinked(event.currentTarget.checked)}
          />
          <TaskRunStatus run={run} />
          {result?.vmId && <Anchor href={hrefOf.vm(result.vmId)}>Open {name.trim()}</Anchor>}
          <DialogButtons onDismiss={onClose}>
            <Button type="submit" loading={run?.state === 'pending'} disabled={!name.trim()}>
              Clone
            </Button>
          </DialogButtons>
        </Stack>
      </form>
    </Modal>
  );
}
