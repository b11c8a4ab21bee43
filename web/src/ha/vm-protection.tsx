/**
 * A VM's high-availability protection in its summary: protected, unprotected, restarting or
 * waiting (with why), its restart priority and order group. Read again on every `ha.*` event (at
 * most every 0.3 s) and when the VM page says the VM changed.
 */
import { Anchor, Group, Text } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { reasonOf } from '../api/follow-task.ts';
import { haVm, type HaVmView } from '../api/ha-calls.ts';
import { hrefOf } from '../hash-route.ts';
import { HaVmStateBadge } from './ha-badges.tsx';

export function VmProtection(props: {
  vmId: string;
  client: ApiClient;
  events: EventStream;
  /** Changes when the VM does (its power state, its host): the protection is read again. */
  changed: string;
}) {
  const { vmId, client, events, changed } = props;
  const [protection, setProtection] = useState<HaVmView | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(
    (signal?: AbortSignal) =>
      haVm(client, vmId, signal)
        .then((fresh) => {
          setProtection(fresh);
          setError(null);
        })
        .catch((failure: unknown) => {
          if (!signal?.aborted) setError(reasonOf(failure));
        }),
    [client, vmId],
  );

  useEffect(() => {
    const abort = new AbortController();
    void load(abort.signal);
    return () => abort.abort();
  }, [load, changed]);

  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const unsubscribe = events.subscribe((event) => {
      if (!event.type.startsWith('ha.')) return;
      timer ??= setTimeout(() => {
        timer = null;
        void load();
      }, 300);
    });
    return () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
    };
  }, [events, load]);

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
