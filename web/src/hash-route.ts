/** The console's pages live in the URL's hash (#/vms, #/vms/ID), so the server serves one file. */
import { useEffect, useState } from 'react';

export type Route = { page: 'inventory' } | { page: 'vm'; vmId: string } | { page: 'create-vm' };

export function parseRoute(hash: string): Route {
  // Before #/vms/ID: "new" is the wizard, never a VM's id.
  if (hash === '#/vms/new') return { page: 'create-vm' };
  const vm = /^#\/vms\/([^/]+)$/.exec(hash);
  if (vm?.[1]) return { page: 'vm', vmId: decodeURIComponent(vm[1]) };
  return { page: 'inventory' };
}

export const hrefOf = {
  inventory: '#/vms',
  vm: (id: string) => `#/vms/${encodeURIComponent(id)}`,
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
