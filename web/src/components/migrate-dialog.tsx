/**
 * Migrate a VM: the placement preview ranks where it could go and explains the hosts it could
 * not; the person picks a host (placement's choice first), then follows the migration's progress
 * (the task's progressDetails: bytes sent and remaining, passes). The page's location timeline
 * grows on its own from the event stream.
 */
import { Button, Checkbox, Loader, Modal, NumberInput, Stack } from '@mantine/core';
import { useEffect, useState } from 'react';
import { reasonOf } from '../api/follow-task.ts';
import { migrateVm, placementPreview } from '../api/vm-calls.ts';
import type { PlacementDecision } from '../api/vm-types.ts';
import { PlacementPreview } from './placement-preview.tsx';
import { TaskRunStatus } from './task-run-status.tsx';
import { useTaskRunner } from './use-task-runner.ts';
import type { VmDialogProps } from './vm-dialog.ts';
import { ErrorAlert } from './error-alert.tsx';
import { DialogButtons } from './dialog-buttons.tsx';

export function MigrateDialog(props: VmDialogProps) {
  const { vm, client, events, onClose } = props;
  const [decision, setDecision] = useState<PlacementDecision | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const { run, start } = useTaskRunner(client, events);
  // Hosts of different connections share no storage unless told: a VM with disks copies them.
  const hasDisks =
    typeof vm.facts['disk.totalBytes'] === 'number' && vm.facts['disk.totalBytes'] > 0;
  const [withStorage, setWithStorage] = useState(hasDisks);
  const [bandwidthMiB, setBandwidthMiB] = useState<number | null>(null);

  useEffect(() => {
    let current = true;
    placementPreview(client, vm.id)
      .then((answer) => {
        if (!current) return;
        setDecision(answer);
        setSelected(answer.chosen?.hostId ?? null);
      })
      .catch((failure: unknown) => current && setError(reasonOf(failure)));
    return () => {
      current = false;
    };
  }, [client, vm.id]);

  const target = decision?.candidates.find((candidate) => candidate.hostId === selected);
  return (
    <Modal opened onClose={onClose} title={`Migrate ${vm.name}`} size="xl">
      <Stack>
        <ErrorAlert title="No placement preview" error={error} />
        {!decision && !error && <Loader size="sm" aria-label="Loading the placement preview" />}
        {decision && (
          <PlacementPreview decision={decision} selected={selected} onSelect={setSelected} />
        )}
        <Checkbox
          label="Copy its disks to the target host (storage migration; for hosts without shared storage)"
          checked={withStorage}
          onChange={(event) => setWithStorage(event.currentTarget.checked)}
        />
        <NumberInput
          label="Bandwidth limit (MiB/s; empty for none)"
          min={1}
          allowDecimal={false}
          w={360}
          value={bandwidthMiB ?? ''}
          onChange={(value) =>
            setBandwidthMiB(typeof value === 'number' && value >= 1 ? value : null)
          }
        />
        <TaskRunStatus run={run} showDetails />
        <DialogButtons onDismiss={onClose}>
          <Button
            disabled={!target || run?.state === 'pending'}
            loading={run?.state === 'pending'}
            onClick={() =>
              target &&
              void start('Migrate', () =>
                migrateVm(client, vm.id, {
                  targetHostId: target.hostId,
                  withStorage,
                  ...(bandwidthMiB ? { maxBandwidthBytesPerSecond: bandwidthMiB * 1048576 } : {}),
                }),
              )
            }
          >
            {target ? `Migrate to ${target.hostName}` : 'Migrate'}
          </Button>
        </DialogButtons>
      </Stack>
    </Modal>
  );
}
