/**
 * The fleet-wide pages (host, high availability, tasks and events, audit, accounting, policies,
 * backup repositories, disaster recovery) and their place in
 * the header. Each page is its own chunk, loaded when first opened (React.lazy), so the first
 * load carries only the shell, the login and the inventory.
 */
import { Anchor, Loader } from '@mantine/core';
import { lazy, Suspense } from 'react';
import type { ApiClient } from './api/client.ts';
import type { EventStream } from './api/event-stream.ts';
import { hrefOf, type FleetPanel, type Route } from './hash-route.ts';
import { usePermissions, type Permission } from './permissions.ts';

const HostPage = lazy(async () => ({ default: (await import('./pages/host-page.tsx')).HostPage }));
const HaPage = lazy(async () => ({ default: (await import('./panels/ha-page.tsx')).HaPage }));
const TasksPage = lazy(async () => ({
  default: (await import('./panels/tasks-page.tsx')).TasksPage,
}));
const AuditPage = lazy(async () => ({
  default: (await import('./panels/audit-page.tsx')).AuditPage,
}));
const AccountingPage = lazy(async () => ({
  default: (await import('./panels/accounting-page.tsx')).AccountingPage,
}));
const PoliciesPage = lazy(async () => ({
  default: (await import('./panels/policies-page.tsx')).PoliciesPage,
}));

const ReplicationPage = lazy(async () => ({
  default: (await import('./panels/replication-page.tsx')).ReplicationPage,
}));

const BackupsPage = lazy(async () => ({
  default: (await import('./panels/backups-page.tsx')).BackupsPage,
}));

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
