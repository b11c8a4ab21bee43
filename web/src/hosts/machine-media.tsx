/**
 * The machine's virtual CD, where its BMC has one (capability `machine.media`, Redfish): the image
 * inserted as the BMC's poll last read it (`bmc.media.inserted`, `bmc.media.image`), and with
 * `host.power` on the host, inserting an image by URL (checked here as the API checks it, with a
 * sentence saying what is wrong) and ejecting it after a confirmation. Each is a task, followed
 * like the other machine actions; a refusal of the request is shown in the dialog that made it.
 */
import { useInputState } from '@mantine/hooks';
import { Button, Group, Modal, Stack, Text, TextInput } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { ejectMachineMedia, imageUrlProblem, insertMachineMedia } from '../api/machine-calls.ts';
import type { ManagedObject } from '../api/types.ts';
import { TaskRunStatus } from '../components/task-run-status.tsx';
import { useTaskRunner } from '../components/use-task-runner.ts';
import { DialogButtons } from '../components/dialog-buttons.tsx';

const insertLabel = 'Insert image';
const ejectLabel = 'Eject';

export function MachineMedia(props: {
  hostId: string;
  hostLabel: string;
  machine: ManagedObject;
  client: ApiClient;
  events: EventStream;
  mayPower: boolean;
  capabilities: readonly string[];
  onTaskEnded: () => void;
}) {
  const { hostId, hostLabel, machine, client, events, mayPower, capabilities, onTaskEnded } = props;
  const { run, start } = useTaskRunner(client, events);
  const [dialog, setDialog] = useState<'insert' | 'eject' | null>(null);
  const [url, setUrl] = useInputState('');
  const [problem, setProblem] = useState<string | null>(null);
  if (!capabilities.includes('machine.media')) return null;

  const inserted = machine.facts['bmc.media.inserted'];
  const image = machine.facts['bmc.media.image'];
  const known = typeof inserted === 'boolean';

  /** Runs the action; the dialog closes once the API accepted it (a refusal stays in it). */
  const launch = async (
    label: string,
    request: () => Promise<Awaited<ReturnType<typeof ejectMachineMedia>>>,
  ) => {
    const done = await start(label, async () => {
      const task = await request();
      setDialog(null);
      return task;
    });
    if (done) setUrl('');
    onTaskEnded();
  };
  const submitInsert = (event: FormEvent) => {
    event.preventDefault();
    const found = imageUrlProblem(url);
    setProblem(found);
    if (found) return;
    void launch(insertLabel, () => insertMachineMedia(client, hostId, url));
  };
  const pending = run?.state === 'pending';
  const refusedHere = (label: string) => run?.state === 'refused' && run.label === label;

  return (
    <Stack gap={4}>
      <Group gap="xs" role="group" aria-label={`Virtual CD of ${hostLabel}`}>
        <Text size="sm" data-testid="machine-media">
          Virtual CD:{' '}
          {!known ? (
            'not reported by the BMC'
          ) : inserted ? (
            typeof image === 'string' ? (
              <Text span ff="monospace" size="sm" style={{ overflowWrap: 'anywhere' }}>
                {image}
              </Text>
            ) : (
              'an image the BMC does not name'
            )
          ) : (
            'empty'
          )}
        </Text>
        {mayPower && (!known || !inserted) && (
          <Button
            size="xs"
            variant="default"
            loading={pending && run.label === insertLabel}
            onClick={() => {
              setProblem(null);
              setDialog('insert');
            }}
          >
            Insert image…
          </Button>
        )}
        {mayPower && (!known || inserted) && (
          <Button
            size="xs"
            variant="default"
            loading={pending && run.label === ejectLabel}
            onClick={() => setDialog('eject')}
          >
            Eject…
          </Button>
        )}
      </Group>
      {dialog === null && <TaskRunStatus run={run} />}
      <Modal
        opened={dialog === 'insert'}
        onClose={() => setDialog(null)}
        closeButtonProps={{ 'aria-label': 'Close' }}
        title={`Insert an image into the virtual CD of ${hostLabel}`}
      >
        <form onSubmit={submitInsert} noValidate>
          <Stack>
            <TextInput
              label="Image URL"
              description="The BMC fetches the ISO image from it: an http, https, nfs or cifs URL."
              placeholder="https://images.example/installer.iso"
              value={url}
              onChange={setUrl}
              error={problem}
              data-autofocus
            />
            {refusedHere(insertLabel) && <TaskRunStatus run={run} />}
            <DialogButtons onDismiss={() => setDialog(null)} dismissLabel="Cancel">
              <Button type="submit" loading={pending && run.label === insertLabel}>
                Insert
              </Button>
            </DialogButtons>
          </Stack>
        </form>
      </Modal>
      <Modal
        opened={dialog === 'eject'}
        onClose={() => setDialog(null)}
        closeButtonProps={{ 'aria-label': 'Close' }}
        title={`Eject the virtual CD of ${hostLabel}?`}
      >
        <Stack>
          <Text size="sm">
            {typeof image === 'string' ? `The image ${image}` : 'The image'} is disconnected from
            the machine: an installer or operating system reading from the CD loses it.
          </Text>
          {refusedHere(ejectLabel) && <TaskRunStatus run={run} />}
          <DialogButtons onDismiss={() => setDialog(null)} dismissLabel="Cancel">
            <Button
              color="red"
              loading={pending && run.label === ejectLabel}
              onClick={() => void launch(ejectLabel, () => ejectMachineMedia(client, hostId))}
            >
              Eject
            </Button>
          </DialogButtons>
        </Stack>
      </Modal>
    </Stack>
  );
}
