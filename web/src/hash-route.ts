/** The console's pages live in the URL's hash (#/vms, #/vms/ID), so the server serves one file. */
import { useEffect, useState } from 'react';

export type Route =
  | { page: 'inventory' }
  | { page: 'vm'; vmId: string }
  | { page: 'host'; hostId: string }
  | { page: 'fleet'; panel: FleetPanel }
  | { page: 'create-vm' };

/** The fleet-wide pages beside the inventory (web/src/fleet-pages.tsx). */
export const fleetPanels = [
  'ha',
  'tasks',
  'audit',
  'accounting',
  'policies',
  'backups',
  'replication',
] as const;
export type FleetPanel = (typeof fleetPanels)[number];

export function parseRoute(hash: string): Route {
  // Before #/vms/ID: "new" is the wizard, never a VM's id.
  if (hash === '#/vms/new') return { page: 'create-vm' };
  const vm = /^#\/vms\/([^/]+)$/.exec(hash);
  if (vm?.[1]) return { page: 'vm', vmId: decodeURIComponent(vm[1]) };
  const host = /^#\/hosts\/([^/]+)$/.exec(hash);
  if (host?.[1]) return { page: 'host', hostId: decodeURIComponent(host[1]) };
  const panel = /^#\/([a-z]+)$/.exec(hash)?.[1];
  if (panel && (fleetPanels as readonly string[]).includes(panel))
    return { page: 'fleet', panel: panel as FleetPanel };
  return { page: 'inventory' };
}

export const hrefOf = {
  inventory: '#/vms',
  vm: (id: string) => `#/vms/${encodeURIComponent(id)}`,
  host: (id: string) => `#/hosts/${encodeURIComponent(id)}`,
  panel: (panel: FleetPanel) => `#/${panel}`,
  createVm: '#/vms/new',
};

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
