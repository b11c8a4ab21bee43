/** The shell: login until there is a session, then the pages with one shared event stream. */
import { Anchor, AppShell, Badge, Button, Group, Text, Title } from '@mantine/core';
import { useCallback, useEffect, useMemo, useState } from 'react';
import type { ApiError } from './api/api-error.ts';
import { ApiClient } from './api/client.ts';
import { EventStream, type StreamState } from './api/event-stream.ts';
import { FleetNav, FleetPage } from './fleet-pages.tsx';
import { hrefOf, useRoute } from './hash-route.ts';
import { CreateVmPage } from './pages/create-vm-page.tsx';
import { InventoryPage } from './pages/inventory-page.tsx';
import { LoginPage } from './pages/login-page.tsx';
import { PermissionProvider, usePermissions } from './permissions.ts';
import { VmPage } from './lazy-vm-page.tsx';
import { clearSession, loadSession, saveSession, type Session } from './session.ts';
import { PageBoundary } from './components/page-boundary.tsx';

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession);
  const [endedReason, setEndedReason] = useState<string | null>(null);

  const endSession = useCallback((error: ApiError) => {
    clearSession();
    setSession(null);
    setEndedReason(`Your session ended (${error.reason}). Log in again.`);
  }, []);

  if (!session)
    return (
      <LoginPage
        notice={endedReason}
        onLoggedIn={(next) => {
          saveSession(next);
          setEndedReason(null);
          setSession(next);
        }}
      />
    );
  return (
    <PermissionProvider token={session.token} onUnauthorized={endSession}>
      <Console
        session={session}
        onUnauthorized={endSession}
        onLoggedOut={() => {
          clearSession();
          setSession(null);
        }}
      />
    </PermissionProvider>
  );
}

function Console(props: {
  session: Session;
  onUnauthorized: (error: ApiError) => void;
  onLoggedOut: () => void;
}) {
  const { session, onUnauthorized, onLoggedOut } = props;
  const client = useMemo(
    () => new ApiClient(session.token, onUnauthorized),
    [session.token, onUnauthorized],
  );
  const [events, setEvents] = useState<EventStream | null>(null);
  const [streamState, setStreamState] = useState<StreamState>('connecting');
  useEffect(() => {
    const stream = new EventStream(client);
    const unsubscribe = stream.onState(setStreamState);
    setEvents(stream);
    return () => {
      unsubscribe();
      stream.close();
    };
  }, [client]);
  const route = useRoute();

  const logout = async () => {
    // Closed first: the server ends the stream of the session being ended, which is no news here.
    events?.close();
    await client.logout();
    onLoggedOut();
  };

  return (
    <AppShell header={{ height: 56 }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between">
          <Group>
            <Title order={3}>Zenith</Title>
            <Anchor href={hrefOf.inventory}>Virtual machines</Anchor>
            <FleetNav />
            <NewVmLink />
          </Group>
          <Group>
            <Badge
              color={streamState === 'live' ? 'green' : 'gray'}
              variant="light"
              aria-label={`Live updates: ${streamState}`}
            >
              {streamState === 'live' ? 'live' : streamState}
            </Badge>
            <Text size="sm" aria-label="Logged in as">
              {session.identity.name} ({session.identity.role})
            </Text>
            <Button variant="default" size="xs" onClick={() => void logout()}>
              Log out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Main>
        {events && (
          <PageBoundary resetKey={JSON.stringify(route)}>
            {route.page === 'host' || route.page === 'fleet' ? (
              <FleetPage route={route} client={client} events={events} />
            ) : route.page === 'vm' ? (
              <VmPage key={route.vmId} vmId={route.vmId} client={client} events={events} />
            ) : route.page === 'create-vm' ? (
              <CreateVmPage client={client} events={events} />
            ) : (
              <InventoryPage client={client} events={events} />
            )}
          </PageBoundary>
        )}
      </AppShell.Main>
    </AppShell>
  );
}

/** Offered to whoever may create a VM somewhere (a custom role bound on one cluster counts). */
function NewVmLink() {
  const { canAnywhere } = usePermissions();
  return canAnywhere('vm.create') ? <Anchor href={hrefOf.createVm}>New VM</Anchor> : null;
}
