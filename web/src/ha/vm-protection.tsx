/**
 * A VM's high-availability protection in its summary: protected, unprotected, restarting or
 * waiting (with why), its restart priority and order group. Read again on every `ha.*` event (at
 * most every 0.3 s), when the VM page says the VM changed, and every 10 s while the tab is visible
 * (a description taken, or its host's fencing becoming known, announce no event).
 */
import { Anchor, Group, Text } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import { haVm, type HaVmView } from '../api/ha-calls.ts';
import { hrefOf } from '../hash-route.ts';
import { HaVmStateBadge } from './ha-badges.tsx';

const pollMs = 10_000;

export function VmProtection(props: {
  vmId: string;
  client: ApiClient;
  events: EventStream;
  /** Changes when the VM does (its power state, its host): the protection is read again. */
  changed: string;
  /**
   * The VM is present on its hypervisor. HA knows nothing of a missing (deleted) VM and answers
   * 404, which the browser would log as an error: it is not asked then.
   */
  present: boolean;
}) {
  const { vmId, client, events, changed, present } = props;
  const [protection, setProtection] = useState<HaVmView | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(
    async (signal?: AbortSignal) => {
      if (!present) return;
      await haVm(client, vmId, signal)
        .then((fresh) => {
          setProtection(fresh);
          setError(null);
        })
        .catch((failure: unknown) => {
          if (!signal?.aborted) setError(reasonOf(failure));
        });
    },
    [client, present, vmId],
  );

  useEffect(() => {
    const abort = new AbortController();
    void load(abort.signal);
    return () => abort.abort();
  }, [load, changed]);

  useEffect(() => {
    const poll = setInterval(() => {
      if (document.visibilityState === 'visible') void load();
    }, pollMs);
    const unsubscribe = events.subscribeCoalesced(
      (event) => event.type.startsWith('ha.'),
      () => void load(),
    );
    return () => {
      unsubscribe();
      clearInterval(poll);
    };
  }, [events, load]);

  if (!present) return null;
  return (
    <Group gap="xs" aria-label="High availability" role="group" data-testid="vm-protection">
      <Anchor size="sm" href={hrefOf.panel('ha')}>
        High availability
      </Anchor>
      {protection ? (
        <>
          <HaVmStateBadge state={protection.state} reason={protection.reason} />
          <Text size="sm">
            priority {protection.priority} · order group {protection.restartOrder}
          </Text>
          {protection.reason && (
            <Text size="sm" c="dimmed">
              {protection.reason}
            </Text>
          )}
        </>
      ) : (
        <Text size="sm" c="dimmed">
          {error ? `unknown (${error})` : '…'}
        </Text>
      )}
    </Group>
  );
}
