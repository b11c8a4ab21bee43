// The layers of docs/architecture.md, enforced: dependencies point down only, no cycles.
// Order, top to bottom: web, cli | api | server, agent | app (the composition root) | services |
// hypervisors | protocols | store | core. Run over src and web (web/ may import the contract,
// src/api, and nothing else of src/).
const layer = (name) => `^src/${name}/`;

// Service rooms, bottom to top: a room may import only rooms listed before it (no cycles between
// them, and an order a newcomer can read). docs/architecture.md draws the same order.
const serviceRooms = [
  'events',
  'audit',
  'inventory',
  'policy',
  'identity',
  'tasks',
  'scheduler',
  'agents',
  'connections',
  'images',
  'quotas',
  'consoles',
  'metrics',
  'accounting',
  'vms',
  'machines',
  'placement',
  'plans',
  'ha',
  'backup',
  'replication',
];
const serviceRoomRules = serviceRooms.map((room, index) => ({
  name: `services-${room}-imports-only-rooms-below`,
  severity: 'error',
  from: { path: `^src/services/${room}/` },
  to: {
    path: `^src/services/(${serviceRooms
      .slice(index + 1)
      .concat(['[^/]+\\.ts$'])
      .join('|')})`,
  },
}));
module.exports = {
  forbidden: [
    ...serviceRoomRules,
    {
      // A new service room joins serviceRooms (and so the order) before it may import anything.
      name: 'services-live-in-known-rooms',
      severity: 'error',
      from: { path: `^src/services/(?!(${serviceRooms.join('|')})/)[^/]+/` },
      to: {},
    },
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'core-is-the-bottom',
      severity: 'error',
      from: { path: layer('core') },
      to: { path: '^src/(?!core/)' },
    },
    {
      name: 'protocols-know-only-bytes',
      severity: 'error',
      from: { path: layer('protocols') },
      to: { path: '^src/(store|hypervisors|machines|services|app|server|cli|agent|web)/' },
    },
    {
      name: 'store-below-services',
      severity: 'error',
      from: { path: layer('store') },
      to: { path: '^src/(protocols|hypervisors|machines|services|app|server|cli|agent|web)/' },
    },
    {
      name: 'drivers-below-services',
      severity: 'error',
      from: { path: layer('hypervisors') },
      to: { path: '^src/(store|services|app|server|cli|agent|web)/' },
    },
    {
      // BMC drivers (Redfish, IPMI) sit beside the hypervisor families: they implement the driver
      // interface and its machine facet, and nothing above drivers.
      name: 'machines-are-drivers',
      severity: 'error',
      from: { path: layer('machines') },
      to: { path: '^src/(store|services|app|server|cli|agent|web)/' },
    },
    {
      // A hypervisor family knows nothing of BMCs (the composition root registers both).
      name: 'hypervisors-know-no-bmc',
      severity: 'error',
      from: { path: layer('hypervisors') },
      to: { path: layer('machines') },
    },
    {
      // Services ask for the machine facet, never for a BMC family's class.
      name: 'services-never-import-a-bmc-family',
      severity: 'error',
      from: { path: layer('services') },
      to: { path: layer('machines') },
    },
    {
      name: 'services-never-import-server-or-cli',
      severity: 'error',
      from: { path: layer('services') },
      to: { path: '^src/(app|server|cli|agent|web)/' },
    },
    {
      // The composition root builds the services; the server and the CLI use what it built.
      name: 'app-below-server',
      severity: 'error',
      from: { path: layer('app') },
      to: { path: '^src/(server|cli|agent|web)/' },
    },
    {
      // Services ask a driver for a facet (hypervisors/driver.ts), never for a family's class: of
      // hypervisors/ they import only its top-level modules (driver.ts, driver-types.ts,
      // registry.ts, delta-feed.ts) and facets/ (docs/decisions/0031).
      name: 'services-never-import-a-driver-family',
      severity: 'error',
      from: { path: layer('services') },
      to: { path: '^src/hypervisors/(?!facets/)[^/]+/' },
    },
    {
      name: 'server-not-cli',
      severity: 'error',
      from: { path: layer('server') },
      to: { path: '^src/(cli|agent|web)/' },
    },
    {
      name: 'agent-not-server-or-cli',
      severity: 'error',
      from: { path: layer('agent') },
      to: { path: '^src/(app|server|cli|web)/' },
    },
    {
      name: 'api-is-the-contract',
      comment: 'src/api declares shapes; it builds on core (errors) and nothing else of the server',
      severity: 'error',
      from: { path: layer('api') },
      to: { path: '^src/', pathNot: '^src/(api|core)/' },
    },
    {
      name: 'cli-speaks-the-contract',
      comment:
        'The CLI talks to a server through src/api only; its process entry and the commands that run a part of Zenith in-process (serve, agent, audit verify of a store) are the exceptions',
      severity: 'error',
      from: {
        path: layer('cli'),
        pathNot: '^src/cli/(main|commands/(serve|agent|local-audit))[.]ts$',
      },
      to: { path: '^src/', pathNot: '^src/(api|cli)/' },
    },
    {
      name: 'web-speaks-the-contract',
      comment: 'The web console takes from src/ only the contract (src/api), as types',
      severity: 'error',
      from: { path: '^web/' },
      to: { path: '^src/', pathNot: '^src/api/' },
    },
    {
      name: 'testing-only-from-tests',
      severity: 'error',
      from: { path: '^src/(?!testing/)' },
      to: { path: '^src/testing/' },
    },
  ],
  options: {
    // The web console's build output is not source.
    exclude: { path: '^web/dist/' },
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.tsx', '.js'] },
  },
};
