/**
 * The permissions an operation may need and the predefined roles' names: part of the contract, since
 * a client asks what it may do (GET /auth/me/permissions) and offers only that.
 */
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
  /** Physical machines through their BMCs: power, boot device, virtual media, identify light, fencing. */
  'host.power',
  /** Linking physical machines to the hypervisor hosts on them (and unlinking). */
  'host.link',
  /** Backups of the VMs in reach, and the backup repositories (read). */
  'backup.read',
  /** Backing VMs up now. */
  'backup.run',
  /** Restoring a backup as a new VM on a host. */
  'backup.restore',
  /** Backup repositories (register, forget, verify) and deleting backups. */
  'backup.manage',
  /** Sites, replicated VMs and their RPO, recovery plans and their runs (read). */
  'replication.read',
  /** Sites, replicating VMs (on the VM and the target host), recovery plans. */
  'replication.manage',
  /** Running recovery plans: test failovers, planned migrations, failovers. */
  'recovery.run',
  /** What a host agent may do with its own credentials: report itself. */
  'agent.report',
] as const;

export type Permission = (typeof permissions)[number];

/** The predefined roles; `none` grants nothing (an identity that acts only through role bindings). */
export const roleNames = ['none', 'viewer', 'operator', 'admin', 'agent'] as const;
export type RoleName = (typeof roleNames)[number];

export function isPermission(value: string): value is Permission {
  return (permissions as readonly string[]).includes(value);
}
