/** The built-in roles: which permissions each grants. Every API route names the permission it needs. */
import { permissions, roleNames, type Permission, type RoleName } from '../../api/permissions.js';

export { isPermission, permissions, roleNames } from '../../api/permissions.js';
export type { Permission, RoleName } from '../../api/permissions.js';

const viewer: Permission[] = [
  'inventory.read',
  'task.read',
  'event.read',
  'connection.read',
  'policy.read',
  'backup.read',
  'replication.read',
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
  'host.power',
  'backup.run',
  'backup.restore',
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
