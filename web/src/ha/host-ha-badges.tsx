/**
 * A host's high-availability state and fencing method beside its other badges on the host page,
 * from `GET /ha` (there is no per-host call: the answer is one entry per host, cheap at the
 * hundreds of hosts a control plane holds). Read again on the host's `ha.*` events and every
 * 5 s while the tab is visible (suspect has no event of its own). Nothing for a host HA does not
 * list (a bare-metal machine).
 */
import { Group } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { haStatusOf, type HaHostView } from '../api/ha-calls.ts';
import { FencingBadge, HaHostStateBadge } from './ha-badges.tsx';

const pollMs = 5000;

export function HostHaBadges(props: { hostId: string; client: ApiClient; events: EventStream }) {
  const { hostId, client, events } = props;
  const [view, setView] = useState<HaHostView | null>(null);

  const load = useCallback(
    (signal?: AbortSignal) =>
      haStatusOf(client, signal)
        .then((status) => setView(status.hosts.find((h) => h.hostId === hostId) ?? null))
        // The badges are extra: a failed read leaves the last ones (or none) on the page.
        .catch(() => undefined),
    [client, hostId],
  );

  useEffect(() => {
    const abort = new AbortController();
    void load(abort.signal);
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void load(abort.signal);
    }, pollMs);
    const unsubscribe = events.subscribe((event) => {
      if (event.type.startsWith('ha.') && event.objectId === hostId) void load(abort.signal);
    });
    return () => {
      abort.abort();
      clearInterval(timer);
      unsubscribe();
    };
  }, [events, hostId, load]);

  if (!view) return null;
  return (
    <Group gap="xs" role="group" aria-label="High availability" title={view.reason}>
      <HaHostStateBadge state={view.state} prefix="HA" />
      <FencingBadge fencing={view.fencing} />
    </Group>
  );
}
