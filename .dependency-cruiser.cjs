// The layers of docs/architecture.md, enforced: dependencies point down only, no cycles.
// Order, top to bottom: web, cli | server, agent | app (the composition root) | services |
// hypervisors | protocols | store | core.
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
  'agents',
  'connections',
  'quotas',
  'consoles',
  'metrics',
  'accounting',
  'vms',
  'placement',
  'plans',
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
      to: { path: '^src/(store|hypervisors|services|app|server|cli|agent|web)/' },
    },
    {
      name: 'store-below-services',
      severity: 'error',
      from: { path: layer('store') },
      to: { path: '^src/(protocols|hypervisors|services|app|server|cli|agent|web)/' },
    },
    {
      name: 'drivers-below-services',
      severity: 'error',
      from: { path: layer('hypervisors') },
      to: { path: '^src/(store|services|app|server|cli|agent|web)/' },
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
      name: 'testing-only-from-tests',
      severity: 'error',
      from: { path: '^src/(?!testing/)' },
      to: { path: '^src/testing/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
