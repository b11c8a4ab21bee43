/** Permissions and the built-in roles that group them. Every API route names the permission it needs. */
export const permissions = [
  'inventory.read',
  'inventory.write',
  'vm.power',
  'vm.migrate',
  'vm.create',
  'vm.delete',
  'vm.snapshot',
  'vm.console',
  'task.read',
  'task.cancel',
  'event.read',
  'connection.read',
  'connection.manage',
  'identity.manage',
  'audit.read',
  'agent.manage',
  /** Usage and cost reports, ownership history, rate cards (read). */
  'accounting.read',
  /** Rate card versions and VM ownership (write). */
  'accounting.manage',
  'policy.read',
  'policy.manage',
  /** Evacuating hosts (maintenance mode), running the rebalancer and applying its plans. */
  'host.maintenance',
  /** What a host agent may do with its own credentials: report itself. */
  'agent.report',
] as const;

export type Permission = (typeof permissions)[number];

/** The predefined roles; `none` grants nothing (an identity that acts only through role bindings). */
export const roleNames = ['none', 'viewer', 'operator', 'admin', 'agent'] as const;
export type RoleName = (typeof roleNames)[number];

const viewer: Permission[] = [
  'inventory.read',
  'task.read',
  'event.read',
  'connection.read',
  'policy.read',
];
const operator: Permission[] = [
  ...viewer,
  'inventory.write',
  'vm.power',
  'vm.migrate',
  'vm.create',
  'vm.delete',
  'vm.snapshot',
  'vm.console',
  'task.cancel',
  'accounting.read',
  'host.maintenance',
];

export const rolePermissions: Record<RoleName, ReadonlySet<Permission>> = {
  none: new Set(),
  viewer: new Set(viewer),
  operator: new Set(operator),
  admin: new Set(permissions.filter((p) => p !== 'agent.report')),
  agent: new Set(['agent.report']),
};

export function isRoleName(value: string): value is RoleName {
  return (roleNames as readonly string[]).includes(value);
}

export interface Principal {
  id: string;
  kind: 'user' | 'service';
  name: string;
  role: RoleName;
  /** The session or API token this request authenticated with. */
  tokenId: string;
}

export function isPermission(value: string): value is Permission {
  return (permissions as readonly string[]).includes(value);
}
