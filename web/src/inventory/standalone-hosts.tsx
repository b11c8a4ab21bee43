/**
 * Hosts in no datacenter, below the tree: a QEMU or agent host, and every physical machine a BMC
 * connection discovered (`/hosts?filter=!parent`), which the tree (datacenters down) never
 * reaches. Each links to its host page and carries its badges: simulated, bare-metal, and the
 * machine's power. Live: a host created, removed or changed anywhere fetches the list again (at
 * most every 0.5 s).
 */
import { Anchor, Group, Stack, Text } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { isInventoryEvent } from '../api/events.ts';
import { reasonOf } from '../api/follow-task.ts';
import type { ManagedObject, Page } from '../api/types.ts';
import { SimulatedBadge } from '../components/simulated-badge.tsx';
import { hrefOf } from '../hash-route.ts';
import { HostBadges } from '../hosts/host-badges.tsx';

const shownAtMost = 200;

export function StandaloneHosts(props: { client: ApiClient; events: EventStream }) {
  const { client, events } = props;
  const [hosts, setHosts] = useState<ManagedObject[]>([]);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(
    async (signal?: AbortSignal) => {
      const params = new URLSearchParams({ limit: String(shownAtMost), sort: 'name' });
      params.append('filter', '!parent');
      params.append('filter', 'status=present');
      try {
        const page = await client.call<Page<ManagedObject>>(
          'GET',
          `/hosts?${params.toString()}`,
          undefined,
          signal,
        );
        setHosts(page.items);
        setMore(page.nextCursor !== null);
        setError(null);
      } catch (failure) {
        if (!signal?.aborted) setError(reasonOf(failure));
      }
    },
    [client],
  );

  useEffect(() => {
    const abort = new AbortController();
    void load(abort.signal);
    const unsubscribe = events.subscribeCoalesced(
      (event) =>
        isInventoryEvent(event) &&
        (event.type === 'inventory.synced' || ('kind' in event.data && event.data.kind === 'host')),
      () => void load(abort.signal),
      500,
    );
    return () => {
      abort.abort();
      unsubscribe();
    };
  }, [events, load]);

  if (hosts.length === 0 && !error) return null;
  return (
    <nav aria-label="Hosts outside datacenters">
      <Text size="sm" fw={600} mt="md" mb={4}>
        Hosts outside datacenters
      </Text>
      {error && (
        <Text size="sm" c="red">
          {error}
        </Text>
      )}
      <Stack gap={4} component="ul" p={0} m={0} style={{ listStyle: 'none' }}>
        {hosts.map((host) => (
          <Group key={host.id} gap={6} wrap="wrap" component="li" data-host-name={host.name}>
            <Anchor href={hrefOf.host(host.id)} size="sm">
              {host.name}
            </Anchor>
            <SimulatedBadge simulated={host.simulated} />
            <HostBadges host={host} />
          </Group>
        ))}
      </Stack>
      {more && (
        <Text size="xs" c="dimmed">
          The first {shownAtMost} shown.
        </Text>
      )}
    </nav>
  );
}
