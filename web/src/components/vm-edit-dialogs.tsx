/** Rename and reconfigure (CPUs, memory): offered only where the VM's connection supports them. */
import { useInputState } from '@mantine/hooks';
import { Button, Modal, NumberInput, Stack, TextInput } from '@mantine/core';
import { useState } from 'react';
import { reconfigureVm, renameVm } from '../api/vm-calls.ts';
import { TaskRunStatus } from './task-run-status.tsx';
import { useTaskRunner } from './use-task-runner.ts';
import type { VmDialogProps } from './vm-dialog.ts';
import { DialogButtons } from './dialog-buttons.tsx';

const mib = 1024 * 1024;

export function RenameDialog(props: VmDialogProps) {
  const { vm, client, events, onClose } = props;
  const [name, setName] = useInputState(vm.name);
  const { run, start } = useTaskRunner(client, events);
  return (
    <Modal opened onClose={onClose} title={`Rename ${vm.name}`}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void start('Rename', () => renameVm(client, vm.id, name.trim()));
        }}
      >
        <Stack>
          <TextInput
            label="New name"
            required
            maxLength={63}
            value={name}
            onChange={setName}
            data-autofocus
          />
          <TaskRunStatus run={run} />
          <DialogButtons onDismiss={onClose}>
            <Button type="submit" loading={run?.state === 'pending'} disabled={!name.trim()}>
              Rename
            </Button>
          </DialogButtons>
        </Stack>
      </form>
    </Modal>
  );
}

export function ReconfigureDialog(props: VmDialogProps) {
  const { vm, client, events, onClose } = props;
  const initialCpus = typeof vm.facts['cpu.count'] === 'number' ? vm.facts['cpu.count'] : 1;
  const initialMemory =
    typeof vm.facts['memory.bytes'] === 'number' ? Math.round(vm.facts['memory.bytes'] / mib) : 128;
  const [cpus, setCpus] = useState<number>(initialCpus);
  const [memoryMiB, setMemoryMiB] = useState<number>(initialMemory);
  const { run, start } = useTaskRunner(client, events);
  return (
    <Modal opened onClose={onClose} title={`Reconfigure ${vm.name}`}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void start('Reconfigure', () =>
            reconfigureVm(client, vm.id, { cpus, memoryBytes: memoryMiB * mib }),
          );
        }}
      >
        <Stack>
          <NumberInput
            label="vCPUs"
            min={1}
            max={512}
            allowDecimal={false}
            value={cpus}
            onChange={(value) => setCpus(Number(value) || 1)}
          />
          <NumberInput
            label="Memory (MiB)"
            min={16}
            allowDecimal={false}
            value={memoryMiB}
            onChange={(value) => setMemoryMiB(Number(value) || 16)}
          />
          <TaskRunStatus run={run} />
          <DialogButtons onDismiss={onClose}>
            <Button type="submit" loading={run?.state === 'pending'}>
              Apply
            </Button>
          </DialogButtons>
        </Stack>
      </form>
    </Modal>
  );
}
