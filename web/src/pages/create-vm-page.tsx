/**
 * The create-VM wizard: size (name, vCPUs, memory, disk), boot and network (a kernel or a base
 * image, the graphical console, the NIC), placement (the preview ranks the hosts and explains the
 * rejected ones; placement chooses at creation, or the person picks a host), then review and
 * create: the task is followed, and the new VM's page opens once it exists.
 */
import {
  Alert,
  Anchor,
  Button,
  Checkbox,
  Group,
  Loader,
  NumberInput,
  Paper,
  SegmentedControl,
  Stack,
  Stepper,
  Table,
  TextInput,
  Title,
} from '@mantine/core';
import { useEffect, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import { createVm, placementPreview } from '../api/vm-calls.ts';
import type { DraftVm, NewVm, PlacementDecision } from '../api/vm-types.ts';
import { PlacementPreview } from '../components/placement-preview.tsx';
import { TaskRunStatus } from '../components/task-run-status.tsx';
import { useTaskRunner } from '../components/use-task-runner.ts';
import { hrefOf } from '../hash-route.ts';

const mib = 1024 * 1024;
const gib = 1024 * mib;

interface Boot {
  from: 'kernel' | 'image';
  kernel: string;
  initrd: string;
  cmdline: string;
  baseImage: string;
  vnc: boolean;
  network: 'user' | 'bridge' | 'none';
  bridge: string;
}

/** The driver options of the new VM (QEMU's: kernel or baseImage, vnc, nics); empty fields left out. */
export function optionsOf(boot: Boot): Record<string, unknown> {
  const options: Record<string, unknown> = { vnc: boot.vnc };
  if (boot.from === 'kernel') {
    if (boot.kernel.trim()) options.kernel = boot.kernel.trim();
    if (boot.initrd.trim()) options.initrd = boot.initrd.trim();
    if (boot.cmdline.trim()) options.cmdline = boot.cmdline.trim();
  } else if (boot.baseImage.trim()) options.baseImage = boot.baseImage.trim();
  options.nics =
    boot.network === 'none'
      ? []
      : boot.network === 'user'
        ? [{ mode: 'user' }]
        : [{ mode: 'bridge', bridge: boot.bridge.trim() }];
  return options;
}

export function CreateVmPage(props: { client: ApiClient; events: EventStream }) {
  const { client, events } = props;
  const [step, setStep] = useState(0);
  const [size, setSize] = useState<DraftVm>({
    name: '',
    cpus: 1,
    memoryBytes: 512 * mib,
    diskBytes: 0,
  });
  const [boot, setBoot] = useState<Boot>({
    from: 'kernel',
    kernel: '',
    initrd: '',
    cmdline: '',
    baseImage: '',
    vnc: true,
    network: 'user',
    bridge: '',
  });
  const [placementChooses, setPlacementChooses] = useState(true);
  const [host, setHost] = useState<string | null>(null);
  const [decision, setDecision] = useState<PlacementDecision | null>(null);
  const [previewError, setPreviewError] = useState<string | null>(null);
  const { run, start } = useTaskRunner(client, events);

  // The preview is asked for when the placement step opens, for the size chosen.
  useEffect(() => {
    if (step !== 2) return;
    let current = true;
    setDecision(null);
    setPreviewError(null);
    placementPreview(client, { ...size, name: size.name.trim() || 'new-vm' })
      .then((answer) => {
        if (!current) return;
        setDecision(answer);
        setHost((chosen) => chosen ?? answer.chosen?.hostId ?? null);
      })
      .catch((failure: unknown) => current && setPreviewError(reasonOf(failure)));
    return () => {
      current = false;
    };
  }, [client, size, step]);

  const sizeValid = size.name.trim().length > 0;
  const bootValid =
    (boot.from === 'kernel' ? boot.kernel.trim() !== '' : boot.baseImage.trim() !== '') &&
    (boot.network !== 'bridge' || boot.bridge.trim() !== '');
  const placementValid = placementChooses || host !== null;
  const chosenHostName = decision?.candidates.find((c) => c.hostId === host)?.hostName ?? host;
  const request: NewVm = {
    ...size,
    name: size.name.trim(),
    ...(placementChooses || !host ? {} : { hostId: host }),
    options: optionsOf(boot),
  };

  const create = async () => {
    const task = await start('Create', () => createVm(client, request));
    const vmId = (task?.result as { vmId?: string } | null)?.vmId;
    if (vmId) window.location.hash = hrefOf.vm(vmId);
  };

  const next = (valid: boolean) => (
    <Button onClick={() => setStep((s) => s + 1)} disabled={!valid}>
      Next
    </Button>
  );
  const back = (
    <Button variant="default" onClick={() => setStep((s) => s - 1)}>
      Back
    </Button>
  );

  return (
    <Stack maw={1100}>
      <Anchor href={hrefOf.inventory}>← All virtual machines</Anchor>
      <Title order={2}>New virtual machine</Title>
      <Stepper active={step} onStepClick={(s) => s < step && setStep(s)} aria-label="Steps">
        <Stepper.Step label="Size" description="Name, CPUs, memory, disk">
          <Paper withBorder p="md">
            <Stack>
              <TextInput
                label="Name"
                required
                maxLength={63}
                value={size.name}
                onChange={(event) => setSize({ ...size, name: event.currentTarget.value })}
              />
              <Group grow>
                <NumberInput
                  label="vCPUs"
                  min={1}
                  max={512}
                  allowDecimal={false}
                  value={size.cpus}
                  onChange={(value) => setSize({ ...size, cpus: Number(value) || 1 })}
                />
                <NumberInput
                  label="Memory (MiB)"
                  min={16}
                  allowDecimal={false}
                  value={size.memoryBytes / mib}
                  onChange={(value) =>
                    setSize({ ...size, memoryBytes: (Number(value) || 16) * mib })
                  }
                />
                <NumberInput
                  label="Disk (GiB, 0 for none)"
                  min={0}
                  allowDecimal={false}
                  value={size.diskBytes / gib}
                  onChange={(value) => setSize({ ...size, diskBytes: (Number(value) || 0) * gib })}
                />
              </Group>
              <Group justify="flex-end">{next(sizeValid)}</Group>
            </Stack>
          </Paper>
        </Stepper.Step>
        <Stepper.Step label="Boot and network" description="Image, console, NIC">
          <Paper withBorder p="md">
            <Stack>
              <SegmentedControl
                aria-label="Boot from"
                w="fit-content"
                value={boot.from}
                onChange={(from) => setBoot({ ...boot, from: from })}
                data={[
                  { value: 'kernel', label: 'Kernel and initrd' },
                  { value: 'image', label: 'Base disk image' },
                ]}
              />
              {boot.from === 'kernel' ? (
                <>
                  <TextInput
                    label="Kernel (path in a storage root)"
                    required
                    value={boot.kernel}
                    onChange={(event) => setBoot({ ...boot, kernel: event.currentTarget.value })}
                  />
                  <TextInput
                    label="Initrd (path, optional)"
                    value={boot.initrd}
                    onChange={(event) => setBoot({ ...boot, initrd: event.currentTarget.value })}
                  />
                  <TextInput
                    label="Kernel command line (optional)"
                    value={boot.cmdline}
                    onChange={(event) => setBoot({ ...boot, cmdline: event.currentTarget.value })}
                  />
                </>
              ) : (
                <TextInput
                  label="Base image (path in a storage root; the disk is a copy-on-write layer over it)"
                  required
                  value={boot.baseImage}
                  onChange={(event) => setBoot({ ...boot, baseImage: event.currentTarget.value })}
                />
              )}
              <Checkbox
                label="Graphical console (VNC)"
                checked={boot.vnc}
                onChange={(event) => setBoot({ ...boot, vnc: event.currentTarget.checked })}
              />
              <SegmentedControl
                aria-label="Network"
                w="fit-content"
                value={boot.network}
                onChange={(network) => setBoot({ ...boot, network: network })}
                data={[
                  { value: 'user', label: 'User-mode NAT' },
                  { value: 'bridge', label: 'Bridge' },
                  { value: 'none', label: 'No network' },
                ]}
              />
              {boot.network === 'bridge' && (
                <TextInput
                  label="Bridge name"
                  required
                  value={boot.bridge}
                  onChange={(event) => setBoot({ ...boot, bridge: event.currentTarget.value })}
                />
              )}
              <Group justify="flex-end">
                {back}
                {next(bootValid)}
              </Group>
            </Stack>
          </Paper>
        </Stepper.Step>
        <Stepper.Step label="Placement" description="Where it runs">
          <Paper withBorder p="md">
            <Stack>
              <Checkbox
                label="Let placement choose the host when creating (by policy)"
                checked={placementChooses}
                onChange={(event) => setPlacementChooses(event.currentTarget.checked)}
              />
              {previewError && (
                <Alert color="red" role="alert" title="No placement preview">
                  {previewError}
                </Alert>
              )}
              {!decision && !previewError && (
                <Loader size="sm" aria-label="Loading the placement preview" />
              )}
              {decision && (
                <PlacementPreview
                  decision={decision}
                  selected={placementChooses ? null : host}
                  onSelect={(chosen) => {
                    setHost(chosen);
                    setPlacementChooses(false);
                  }}
                />
              )}
              <Group justify="flex-end">
                {back}
                {next(placementValid)}
              </Group>
            </Stack>
          </Paper>
        </Stepper.Step>
        <Stepper.Step label="Review" description="Create it">
          <Paper withBorder p="md">
            <Stack>
              <Table aria-label="New VM">
                <Table.Tbody>
                  {[
                    ['Name', request.name],
                    ['vCPUs', String(request.cpus)],
                    ['Memory', `${request.memoryBytes / mib} MiB`],
                    ['Disk', request.diskBytes ? `${request.diskBytes / gib} GiB` : 'none'],
                    [
                      'Boot',
                      boot.from === 'kernel' ? `kernel ${boot.kernel}` : `image ${boot.baseImage}`,
                    ],
                    ['Graphical console', boot.vnc ? 'yes' : 'no'],
                    ['Network', boot.network === 'bridge' ? `bridge ${boot.bridge}` : boot.network],
                    ['Host', placementChooses ? 'chosen by placement' : (chosenHostName ?? '—')],
                  ].map(([key, value]) => (
                    <Table.Tr key={key}>
                      <Table.Th scope="row">{key}</Table.Th>
                      <Table.Td>{value}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
              <TaskRunStatus run={run} />
              <Group justify="flex-end">
                {back}
                <Button onClick={() => void create()} loading={run?.state === 'pending'}>
                  Create VM
                </Button>
              </Group>
            </Stack>
          </Paper>
        </Stepper.Step>
      </Stepper>
    </Stack>
  );
}
