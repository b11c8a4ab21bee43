/**
 * Linking a machine to the hypervisor host running on it, by hand, and unlinking it (permission
 * `host.link`, which the API wants on both hosts). On a bare-metal machine's page: "Link to
 * hypervisor host…", choosing among the hosts that are neither machines nor linked. On a linked
 * machine's page and on its hypervisor host's page: "Unlink…", whose confirmation says that Zenith
 * remembers the unlink and will not link them again by itself. A refusal (403, 409 …) stays in the
 * dialog with its code.
 */
import { useInputState } from '@mantine/hooks';
import { Button, Group, Loader, Modal, NativeSelect, Stack, Text } from '@mantine/core';
import { useEffect, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import { reasonOf } from '../api/follow-task.ts';
import {
  linkableHosts,
  linkableLimit,
  linkMachine,
  unlinkMachine,
  type MachineView,
} from '../api/machine-calls.ts';
import type { ManagedObject } from '../api/types.ts';
import { ErrorAlert } from '../components/error-alert.tsx';
import { DialogButtons } from '../components/dialog-buttons.tsx';

/** What Zenith found them to share, for the links it made by itself. */
const sharedBy: Record<NonNullable<MachineView['link']>['how'], string | null> = {
  smbiosUuid: 'they report the same SMBIOS UUID',
  serial: 'they report the same serial number',
  mac: 'they share a NIC MAC address',
  manual: null,
};

export function MachineLinkActions(props: {
  view: MachineView;
  /** The host whose page this is (the machine, or the hypervisor host on it). */
  pageHostId: string;
  /** The hypervisor host's name, where the page knows it. */
  linkedHostName: string | null;
  client: ApiClient;
  mayLink: boolean;
  onChanged: () => void;
}) {
  const { view, pageHostId, linkedHostName, client, mayLink, onChanged } = props;
  const [dialog, setDialog] = useState<'link' | 'unlink' | null>(null);
  if (!mayLink) return null;
  const onMachinePage = view.machine.id === pageHostId;
  const close = () => setDialog(null);
  const changed = () => {
    setDialog(null);
    onChanged();
  };
  return (
    <>
      <Group gap="xs">
        {onMachinePage && view.hostId === null && (
          <Button size="xs" variant="default" onClick={() => setDialog('link')}>
            Link to hypervisor host…
          </Button>
        )}
        {view.hostId !== null && (
          <Button size="xs" variant="default" color="orange" onClick={() => setDialog('unlink')}>
            Unlink…
          </Button>
        )}
      </Group>
      {dialog === 'link' && (
        <LinkDialog view={view} client={client} onClose={close} onLinked={changed} />
      )}
      {dialog === 'unlink' && (
        <UnlinkDialog
          view={view}
          hostName={linkedHostName ?? view.hostId ?? ''}
          client={client}
          onClose={close}
          onUnlinked={changed}
        />
      )}
    </>
  );
}

/** A dialog's one request: busy while it runs, its refusal shown (never swallowed). */
function useSubmit() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (request: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await request();
    } catch (failure) {
      setError(reasonOf(failure));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, submit };
}

function LinkDialog(props: {
  view: MachineView;
  client: ApiClient;
  onClose: () => void;
  onLinked: () => void;
}) {
  const { view, client, onClose, onLinked } = props;
  const [hosts, setHosts] = useState<{ hosts: ManagedObject[]; more: boolean } | null>(null);
  const [chosen, setChosen] = useInputState('');
  const { busy, error, setError, submit } = useSubmit();

  useEffect(() => {
    const abort = new AbortController();
    linkableHosts(client, abort.signal)
      .then(setHosts)
      .catch((failure: unknown) => {
        if (!abort.signal.aborted) setError(reasonOf(failure));
      });
    return () => abort.abort();
  }, [client]);

  const link = () =>
    submit(async () => {
      await linkMachine(client, view.machine.id, chosen);
      onLinked();
    });

  return (
    <Modal
      opened
      onClose={onClose}
      closeButtonProps={{ 'aria-label': 'Close' }}
      title={`Link ${view.machine.name} to a hypervisor host`}
    >
      <Stack>
        <Text size="sm">
          Choose the hypervisor host running on this machine. That host then shows the machine's
          hardware and power, power actions on either reach this machine, and the machine is no
          longer bare metal.
        </Text>
        {!hosts && !error && <Loader size="sm" aria-label="Loading the hosts" />}
        {hosts && hosts.hosts.length === 0 && (
          <Text size="sm" c="dimmed">
            No hypervisor host to link: every one is linked to a machine already, or none is
            connected.
          </Text>
        )}
        {hosts && hosts.hosts.length > 0 && (
          <NativeSelect
            label="Hypervisor host"
            description="Hosts that are not machines and not linked to one"
            value={chosen}
            onChange={setChosen}
            data={[
              { value: '', label: 'Choose a host' },
              ...hosts.hosts.map((host) => ({ value: host.id, label: host.name })),
            ]}
          />
        )}
        {hosts?.more && (
          <Text size="xs" c="dimmed">
            Only the first {linkableLimit} hosts by name were looked at; link another one with
            `zenith hosts link`.
          </Text>
        )}
        <ErrorAlert title="Not linked" error={error} />
        <DialogButtons onDismiss={onClose} dismissLabel="Cancel">
          <Button disabled={chosen === ''} loading={busy} onClick={() => void link()}>
            Link
          </Button>
        </DialogButtons>
      </Stack>
    </Modal>
  );
}

function UnlinkDialog(props: {
  view: MachineView;
  hostName: string;
  client: ApiClient;
  onClose: () => void;
  onUnlinked: () => void;
}) {
  const { view, hostName, client, onClose, onUnlinked } = props;
  const { busy, error, submit } = useSubmit();
  const shared = view.link ? sharedBy[view.link.how] : null;

  const unlink = () =>
    submit(async () => {
      await unlinkMachine(client, view.machine.id);
      onUnlinked();
    });

  return (
    <Modal
      opened
      onClose={onClose}
      closeButtonProps={{ 'aria-label': 'Close' }}
      title={`Unlink ${view.machine.name} from ${hostName}?`}
    >
      <Stack>
        <Text size="sm">
          {hostName} stops showing the machine's hardware and power, power actions on it no longer
          reach the machine, and the machine becomes bare metal: no VM is placed on it.
        </Text>
        <Text size="sm" fw={500}>
          Zenith remembers this unlink as undone on purpose: it will not link them again by itself
          {shared ? `, even though ${shared}` : ''}. Link them again by hand to undo it.
        </Text>
        <ErrorAlert title="Not unlinked" error={error} />
        <DialogButtons onDismiss={onClose} dismissLabel="Cancel">
          <Button color="red" loading={busy} onClick={() => void unlink()}>
            Unlink
          </Button>
        </DialogButtons>
      </Stack>
    </Modal>
  );
}
