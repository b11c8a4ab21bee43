/**
 * The fleet-wide pages (host, high availability, tasks and events, audit, accounting, policies,
 * backup repositories, disaster recovery) and their place in
 * the header. Each page is its own chunk, loaded when first opened (React.lazy), so the first
 * load carries only the shell, the login and the inventory.
 */
import { Anchor, Loader } from '@mantine/core';
import { Suspense } from 'react';
import type { ApiClient } from './api/client.ts';
import type { EventStream } from './api/event-stream.ts';
import { hrefOf, type FleetPanel, type Route } from './hash-route.ts';
import { usePermissions, type Permission } from './permissions.ts';
import { lazyChunk } from './components/lazy-chunk.ts';

const HostPage = lazyChunk(
  () => import('./pages/host-page.tsx'),
  (m) => m.HostPage,
);
const HaPage = lazyChunk(
  () => import('./panels/ha-page.tsx'),
  (m) => m.HaPage,
);
const TasksPage = lazyChunk(
  () => import('./panels/tasks-page.tsx'),
  (m) => m.TasksPage,
);
const AuditPage = lazyChunk(
  () => import('./panels/audit-page.tsx'),
  (m) => m.AuditPage,
);
const AccountingPage = lazyChunk(
  () => import('./panels/accounting-page.tsx'),
  (m) => m.AccountingPage,
);
const PoliciesPage = lazyChunk(
  () => import('./panels/policies-page.tsx'),
  (m) => m.PoliciesPage,
);

const ReplicationPage = lazyChunk(
  () => import('./panels/replication-page.tsx'),
  (m) => m.ReplicationPage,
);

const BackupsPage = lazyChunk(
  () => import('./panels/backups-page.tsx'),
  (m) => m.BackupsPage,
);

/** `everywhere`: the page's routes need the permission on everything (a scoped binding is not enough). */
const panels: Array<{ panel: FleetPanel; label: string; needs: Permission; everywhere?: true }> = [
  { panel: 'ha', label: 'High availability', needs: 'inventory.read' },
  { panel: 'tasks', label: 'Tasks and events', needs: 'task.read' },
  { panel: 'audit', label: 'Audit', needs: 'audit.read' },
  { panel: 'accounting', label: 'Accounting', needs: 'accounting.read' },
  { panel: 'policies', label: 'Policies', needs: 'policy.read' },
  { panel: 'backups', label: 'Backups', needs: 'backup.read', everywhere: true },
  { panel: 'replication', label: 'Disaster recovery', needs: 'replication.read', everywhere: true },
];

/** Links to the fleet pages the identity may read somewhere. */
export function FleetNav() {
  const { can, canAnywhere } = usePermissions();
  return (
    <>
      {panels
        .filter((entry) => (entry.everywhere ? can(entry.needs) : canAnywhere(entry.needs)))
        .map((entry) => (
          <Anchor key={entry.panel} href={hrefOf.panel(entry.panel)}>
            {entry.label}
          </Anchor>
        ))}
    </>
  );
}

export function FleetPage(props: {
  route: Extract<Route, { page: 'host' } | { page: 'fleet' }>;
  client: ApiClient;
  events: EventStream;
}) {
  const { route, client, events } = props;
  return (
    <Suspense fallback={<Loader aria-label="Loading the page" />}>
      {route.page === 'host' ? (
        <HostPage key={route.hostId} hostId={route.hostId} client={client} events={events} />
      ) : route.panel === 'ha' ? (
        <HaPage client={client} events={events} />
      ) : route.panel === 'tasks' ? (
        <TasksPage client={client} events={events} />
      ) : route.panel === 'audit' ? (
        <AuditPage client={client} />
      ) : route.panel === 'accounting' ? (
        <AccountingPage client={client} />
      ) : route.panel === 'backups' ? (
        <BackupsPage client={client} events={events} />
      ) : route.panel === 'replication' ? (
        <ReplicationPage client={client} events={events} />
      ) : (
        <PoliciesPage client={client} />
      )}
    </Suspense>
  );
}
