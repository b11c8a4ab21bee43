/**
 * The inventory: a tree (datacenter → cluster → host → VM, loaded as it is opened) beside the VM
 * table. The table is filtered by the filter bar (name, tags, facts: inventory/filter-bar.ts) and
 * by the datacenter or cluster chosen in the tree, sorted by column, one server-side page at a
 * time (cursor pages of 50 rows, so the page costs the same with 50 or 50,000 VMs). Rows on screen
 * follow the event stream: a VM changed elsewhere is fetched again and redrawn, and a VM created
 * or removed anywhere makes the current page be fetched again, all without a reload.
 */
import {
  Anchor,
  Badge,
  Button,
  Checkbox,
  CloseButton,
  Grid,
  Group,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  UnstyledButton,
} from '@mantine/core';
import { useDebouncedValue, useInputState } from '@mantine/hooks';
import { useEffect, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { isInventoryEvent } from '../api/events.ts';
import type { ManagedObject } from '../api/types.ts';
import { PowerStateBadge } from '../components/power-state-badge.tsx';
import { hrefOf } from '../hash-route.ts';
import { parseFilterBar } from '../inventory/filter-bar.ts';
import { InventoryTree } from '../inventory/inventory-tree.tsx';
import { StandaloneHosts } from '../inventory/standalone-hosts.tsx';
import { SimulatedBadge } from '../components/simulated-badge.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';

/** Inventory events that change which VMs a page holds (not just what one of them shows). */
const membershipEvents = new Set([
  'inventory.created',
  'inventory.deleted',
  'inventory.missing',
  'inventory.synced',
]);

const pageSize = 50;

interface Column {
  label: string;
  /** The API's sort key (name or a fact). */
  sortKey: string;
  render: (vm: ManagedObject) => React.ReactNode;
}

const columns: Column[] = [
  {
    label: 'Name',
    sortKey: 'name',
    render: (vm) => (
      <Group gap="xs" wrap="nowrap">
        <Anchor href={hrefOf.vm(vm.id)}>{vm.name}</Anchor>
        <SimulatedBadge simulated={vm.simulated} />
      </Group>
    ),
  },
  {
    label: 'Power state',
    sortKey: 'power.state',
    render: (vm) => <PowerStateBadge state={vm.facts['power.state']} />,
  },
  {
    label: 'Host',
    sortKey: 'location.hostName',
    render: (vm) => String(vm.computed['location.hostName'] ?? '—'),
  },
  { label: 'CPUs', sortKey: 'cpu.count', render: (vm) => String(vm.facts['cpu.count'] ?? '—') },
  {
    label: 'Memory',
    sortKey: 'memory.bytes',
    render: (vm) => formatBytes(vm.facts['memory.bytes']),
  },
  {
    label: 'Tags',
    sortKey: 'tags',
    render: (vm) => vm.tags.join(' '),
  },
];

export function formatBytes(value: unknown): string {
  if (typeof value !== 'number') return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let amount = value;
  let unit = 0;
  while (amount >= 1024 && unit < units.length - 1) {
    amount /= 1024;
    unit += 1;
  }
  return `${Number.isInteger(amount) ? amount : amount.toFixed(1)} ${units[unit]}`;
}

export function InventoryPage(props: { client: ApiClient; events: EventStream }) {
  const { client, events } = props;
  const [search, setSearch] = useInputState('');
  const [debouncedSearch] = useDebouncedValue(search, 250);
  const [sort, setSort] = useState('name');
  /** A datacenter or cluster chosen in the tree: the table shows only the VMs under it. */
  const [scope, setScope] = useState<{ id: string; kind: string; name: string } | null>(null);
  /** Bumped when the page must be fetched again (VMs created or removed elsewhere). */
  const [generation, setGeneration] = useState(0);
  /** VMs Zenith no longer finds (deleted elsewhere or gone with their host) are hidden unless asked for. */
  const [withMissing, setWithMissing] = useState(false);
  // Cursors of the pages seen so far: cursors[i] opens page i (null: the first page).
  const [cursors, setCursors] = useState<Array<string | null>>([null]);
  const [pageIndex, setPageIndex] = useState(0);
  const [rows, setRows] = useState<ManagedObject[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);

  // A new search or sort starts again at the first page.
  useEffect(() => {
    setCursors([null]);
    setPageIndex(0);
  }, [debouncedSearch, sort, scope, withMissing]);

  const cursor = cursors[pageIndex] ?? null;
  useEffect(() => {
    const abort = new AbortController();
    setLoading(true);
    const load = async () => {
      const query = parseFilterBar(debouncedSearch);
      const filters = [...query.filters];
      for (const parent of query.parents) {
        const found = await client.call<{ items: ManagedObject[] }>(
          'GET',
          `/${parent.kind}s?limit=1&filter=${encodeURIComponent(`name=${parent.name}`)}`,
          undefined,
          abort.signal,
        );
        const id = found.items[0]?.id;
        if (!id) throw new Error(`there is no ${parent.kind} named '${parent.name}'`);
        filters.push(`${parent.fact}=${id}`);
      }
      if (scope) filters.push(`location.${scope.kind}Id=${scope.id}`);
      if (!withMissing) filters.push('status=present');
      return client.listVms(
        { search: '', sort, cursor, limit: pageSize, filters, tags: query.tags },
        abort.signal,
      );
    };
    load()
      .then((page) => {
        setRows(page.items);
        setNextCursor(page.nextCursor);
        setError(null);
      })
      .catch((failure: unknown) => {
        if (abort.signal.aborted) return;
        setError(failure instanceof ApiError ? failure.reason : String(failure));
      })
      .finally(() => {
        if (!abort.signal.aborted) setLoading(false);
      });
    return () => abort.abort();
  }, [client, debouncedSearch, sort, cursor, scope, generation, withMissing]);

  // Live: VMs created or removed anywhere may enter or leave this page; fetch it again, at most
  // every half second however many arrive.
  useEffect(
    () =>
      events.subscribeCoalesced(
        (event) => {
          if (!membershipEvents.has(event.type) || !isInventoryEvent(event)) return false;
          return event.type === 'inventory.synced' || event.data.kind === 'vm';
        },
        () => setGeneration((n) => n + 1),
        500,
      ),
    [events],
  );

  // Live: a change to a VM on this page is fetched again and redrawn in place.
  useEffect(() => {
    const visible = new Set(rows.map((vm) => vm.id));
    return events.subscribe((event) => {
      if (!event.type.startsWith('inventory.') || !event.objectId) return;
      if (!visible.has(event.objectId)) return;
      client
        .getVm(event.objectId)
        .then((fresh) => setRows((now) => now.map((vm) => (vm.id === fresh.id ? fresh : vm))))
        .catch(() => undefined);
    });
  }, [client, events, rows]);

  const sortBy = (key: string) => setSort((now) => (now === key ? `-${key}` : key));
  const sortOrder = (key: string): 'ascending' | 'descending' | 'none' =>
    sort === key ? 'ascending' : sort === `-${key}` ? 'descending' : 'none';

  return (
    <Grid>
      <Grid.Col span={{ base: 12, md: 3 }}>
        <InventoryTree
          client={client}
          events={events}
          onActivate={(object) => {
            if (object.kind === 'vm') window.location.hash = hrefOf.vm(object.id);
            else if (object.kind === 'host') window.location.hash = hrefOf.host(object.id);
            else setScope(object);
          }}
        />
        <StandaloneHosts client={client} events={events} />
      </Grid.Col>
      <Grid.Col span={{ base: 12, md: 9 }}>
        <Stack>
          <Title order={2}>Virtual machines</Title>
          <TextInput
            label="Search by name, tag or fact"
            description="Words search names; tag:env:prod, power=running, cpus>=4, host=NAME, cluster=NAME, user.owner"
            placeholder="web tag:env:prod power=running"
            value={search}
            onChange={setSearch}
            maw={600}
          />
          <Checkbox
            label="Include missing VMs (no longer found on their hypervisor)"
            checked={withMissing}
            onChange={(event) => setWithMissing(event.currentTarget.checked)}
          />
          {scope && (
            <Group gap="xs">
              <Text size="sm">In {scope.kind}</Text>
              <Badge variant="light" size="lg" tt="none">
                {scope.name}
              </Badge>
              <CloseButton
                size="sm"
                aria-label={`Show VMs everywhere, not only in ${scope.name}`}
                onClick={() => setScope(null)}
              />
            </Group>
          )}
          <ErrorAlert title="The list could not be loaded" error={error} />
          <Table striped highlightOnHover aria-label="Virtual machines" aria-busy={loading}>
            <Table.Thead>
              <Table.Tr>
                {columns.map((column) => (
                  <Table.Th key={column.sortKey} aria-sort={sortOrder(column.sortKey)}>
                    <UnstyledButton
                      onClick={() => sortBy(column.sortKey)}
                      aria-label={`Sort by ${column.label.toLowerCase()}`}
                      fw={600}
                    >
                      {column.label}
                      {sortOrder(column.sortKey) === 'ascending'
                        ? ' ▲'
                        : sortOrder(column.sortKey) === 'descending'
                          ? ' ▼'
                          : ''}
                    </UnstyledButton>
                  </Table.Th>
                ))}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((vm) => (
                <Table.Tr key={vm.id} data-vm-name={vm.name}>
                  {columns.map((column) => (
                    <Table.Td key={column.sortKey}>{column.render(vm)}</Table.Td>
                  ))}
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          {!loading && rows.length === 0 && <Text c="dimmed">No virtual machines match.</Text>}
          <Group>
            <Button
              variant="default"
              disabled={pageIndex === 0}
              onClick={() => setPageIndex((index) => index - 1)}
            >
              Previous page
            </Button>
            <Text size="sm" aria-live="polite">
              Page {pageIndex + 1}
            </Text>
            <Button
              variant="default"
              disabled={!nextCursor}
              onClick={() => {
                const next = nextCursor;
                setCursors((known) => [...known.slice(0, pageIndex + 1), next]);
                setPageIndex((index) => index + 1);
              }}
            >
              Next page
            </Button>
          </Group>
        </Stack>
      </Grid.Col>
    </Grid>
  );
}
