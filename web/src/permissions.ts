/**
 * What the logged-in role may do, to offer only the actions it grants. The table is the server's
 * own (bundled from src/services/identity/roles.ts), so the two cannot drift; the server still
 * decides, and a refusal shows its coded reason.
 */
import { isRoleName, rolePermissions, type Permission } from '../../src/services/identity/roles.ts';

export type { Permission };

export function roleCan(role: string, permission: Permission): boolean {
  return isRoleName(role) && rolePermissions[role].has(permission);
}
