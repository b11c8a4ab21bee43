/**
 * Table shapes as Kysely sees them. JSON columns are stored as text in both
 * databases (the in-memory index answers fact queries), times are integer
 * milliseconds since the epoch.
 */
import type { Generated } from 'kysely';

export interface ObjectsTable {
  id: string;
  kind: string;
  name: string;
  parent_id: string | null;
  connection_id: string | null;
  external_id: string | null;
  /** JSON array of strings. */
  tags: string;
  /** JSON object: facts discovered from the hypervisor (read-only for users). */
  facts: string;
  /** JSON object: facts written by users (user.* namespace). */
  user_facts: string;
  status: string;
  missing_since: number | null;
  created_at: number;
  updated_at: number;
}

export interface LocationHistoryTable {
  id: Generated<number>;
  vm_id: string;
  host_id: string | null;
  power_state: string;
  from_ts: number;
  to_ts: number | null;
  /** Why the VM came to be there when that is not plain discovery: 'failover'. */
  reason: string | null;
}

export interface ConnectionsTable {
  id: string;
  name: string;
  type: string;
  /** JSON object: driver settings (no secrets). */
  settings: string;
  /** Secrets for the peer, encrypted at rest; null when the driver needs none. */
  secret: string | null;
  identity_id: string;
  state: string;
  last_error: string | null;
  last_sync_at: number | null;
  created_at: number;
  /** Who the peer is (its driver's peerIdentity()), unique; null until first reached or when unknown. */
  peer_id: string | null;
}

export interface IdentitiesTable {
  id: string;
  kind: string;
  name: string;
  display_name: string | null;
  role: string;
  password_hash: string | null;
  /** local or ldap (the password is checked by the directory). */
  source: string;
  /** JSON object: facts about the identity (a user's department), read by binding conditions. */
  attributes: string;
  disabled: number;
  created_at: number;
  updated_at: number;
}

export interface TokensTable {
  id: string;
  identity_id: string;
  kind: string;
  name: string;
  secret_hash: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface TasksTable {
  id: string;
  kind: string;
  target_id: string | null;
  owner_id: string;
  state: string;
  progress: number;
  progress_message: string | null;
  /** JSON object of numbers and strings, or null. */
  progress_details: string | null;
  params: string;
  result: string | null;
  error_code: string | null;
  error_message: string | null;
  attempt: number;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
}

export interface EventsTable {
  seq: Generated<number>;
  type: string;
  object_id: string | null;
  data: string;
  ts: number;
}

export interface AuditTable {
  seq: number;
  ts: number;
  actor_id: string;
  actor_kind: string;
  actor_name: string;
  action: string;
  target_id: string | null;
  params: string;
  result: string;
  error_code: string | null;
  request_id: string | null;
  prev_hash: string;
  hash: string;
}

export interface EnrollmentTokensTable {
  id: string;
  secret_hash: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  agent_id: string | null;
}

export interface CertificateAuthoritiesTable {
  id: string;
  /** PEM. */
  certificate: string;
  /** The CA's private key (PKCS#8 PEM), sealed with the secret box. */
  sealed_key: string;
  created_at: number;
  not_after: number;
}

export interface AgentCertificatesTable {
  /** Lower-case hex. */
  serial: string;
  agent_id: string;
  identity_id: string;
  not_before: number;
  not_after: number;
  issued_at: number;
  /** The serial this one renews; that one is revoked once this one is first used. */
  replaces: string | null;
  first_used_at: number | null;
  revoked_at: number | null;
  revoked_reason: string | null;
}

export interface AgentsTable {
  id: string;
  identity_id: string;
  hostname: string;
  /** JSON object: facts the agent reports about its host. */
  facts: string;
  address: string | null;
  enrolled_at: number;
  last_seen_at: number | null;
  revoked_at: number | null;
}

export interface RateCardsTable {
  id: string;
  version: number;
  effective_from: number;
  /** JSON object: the validated rate card body (prices as decimal strings). */
  body: string;
  created_by: string;
  created_at: number;
}

export interface GroupsTable {
  id: string;
  name: string;
  description: string | null;
  created_at: number;
}

export interface GroupMembersTable {
  group_id: string;
  member_id: string;
  /** user, service or group (groups nest). */
  member_kind: string;
  added_at: number;
}

export interface RolesTable {
  id: string;
  name: string;
  description: string | null;
  /** JSON array of permission names. */
  permissions: string;
  created_at: number;
}

export interface RoleBindingsTable {
  id: string;
  subject_id: string;
  subject_kind: string;
  /** A role name: built-in (viewer, operator, admin, agent) or custom. */
  role: string;
  /** The object whose subtree the binding covers; null = everything. */
  scope_id: string | null;
  /** A condition in the policy language over subject.* and object.*; null = always. */
  condition: string | null;
  created_by: string;
  created_at: number;
}

export interface VmOwnershipTable {
  id: Generated<number>;
  vm_id: string;
  owner: string;
  group_name: string;
  cost_center: string;
  from_ts: number;
  to_ts: number | null;
  changed_by: string;
}

/** Shared columns of vm_metric_samples and vm_metric_rollups (see migration 0008-metric-samples). */
export interface MetricSums {
  vm_id: string;
  span_ms: number;
  cpu_ms: number;
  disk_read_bytes: number;
  disk_write_bytes: number;
  net_span_ms: number;
  net_rx_bytes: number;
  net_tx_bytes: number;
  memory_sum_bytes: number;
  memory_samples: number;
}

export interface VmMetricSamplesTable extends MetricSums {
  at: number;
}

export interface VmMetricRollupsTable extends MetricSums {
  bucket_start: number;
}

export interface VmAllocationsTable {
  id: Generated<number>;
  vm_id: string;
  from_ts: number;
  cpus: number;
  memory_bytes: number;
  disk_bytes: number;
}

export interface PoliciesTable {
  id: string;
  name: string;
  description: string | null;
  scope_kind: string;
  scope_id: string | null;
  /** 1 or 0. */
  enabled: number;
  /** JSON: when, constraints, preferences, rules, settings. */
  document: string;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface PlacementPlansTable {
  id: string;
  /** rebalance, evacuation or moves. */
  kind: string;
  /** proposed, applying, applied, failed or discarded. */
  state: string;
  /** The host an evacuation empties. */
  host_id: string | null;
  /** The task that applies it. */
  task_id: string | null;
  /** JSON: options, moves with their schedule, figures, outcome. */
  document: string;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface HostModesTable {
  host_id: string;
  /** entering-maintenance or maintenance (a host in normal mode has no row). */
  mode: string;
  plan_id: string | null;
  since: number;
  updated_by: string;
}

export interface MachineLinksTable {
  machine_id: string;
  /** The hypervisor host on the machine; null: an operator said none (never linked by itself). */
  host_id: string | null;
  how: string;
  linked_by: string;
  at: number;
}

export interface HaVmDescriptionsTable {
  vm_id: string;
  /** The host it was described on. */
  host_id: string;
  /** The portable-VM description (JSON). */
  description: string;
  described_at: number;
}

export interface HaFailoversTable {
  id: string;
  host_id: string;
  host_name: string;
  /** When the host stopped answering (its last heartbeat). */
  failed_at: number;
  detected_at: number;
  /** fencing, restarting, done, waiting (VMs wait for capacity), failed */
  state: string;
  /** bmc, self-fence (lease expired past the deadline) */
  fence_method: string | null;
  fenced_at: number | null;
  task_id: string | null;
  error: string | null;
  updated_at: number;
  finished_at: number | null;
}

export interface HaRestartsTable {
  failover_id: string;
  vm_id: string;
  vm_name: string;
  priority: string;
  restart_order: number;
  /** pending, starting, running, waiting (no capacity), failed, skipped */
  state: string;
  to_host_id: string | null;
  reason: string | null;
  attempts: number;
  started_at: number | null;
  running_at: number | null;
  updated_at: number;
}

/** One attempt of VM monitoring to restart a VM after one stop (migration 0013). */
export interface HaMonitorRestartsTable {
  vm_id: string;
  /** The stop: when the VM's stopped location interval began. */
  stopped_at: number;
  /** 1, 2, … for the attempts after one stop (a start that failed is tried again). */
  attempt: number;
  vm_name: string;
  host_id: string | null;
  /** power.stopCause: crashed, guest-panic */
  cause: string;
  /** restarting (its start task queued or running), restarted, failed, limit (not tried: too many) */
  state: string;
  task_id: string | null;
  reason: string | null;
  created_at: number;
  updated_at: number;
}

export interface QuotasTable {
  group_id: string;
  /** null: no limit. */
  vcpus: number | null;
  memory_bytes: number | null;
  disk_bytes: number | null;
  vms: number | null;
  updated_by: string;
  updated_at: number;
}

/** What a queued or running task holds against its group's quotas until the VM exists (or the task fails). */
export interface QuotaReservationsTable {
  task_id: string;
  group_id: string;
  vcpus: number;
  memory_bytes: number;
  disk_bytes: number;
  vms: number;
  created_at: number;
}

export interface MachineSensorSamplesTable {
  machine_id: string;
  at: number;
  /** Power draw (W): the first power reading (Redfish PowerControl total, IPMI's power sensor). */
  watts: number | null;
  /** The highest temperature read (°C). */
  temperature_c: number | null;
  /** The average of the fans read (RPM). */
  fan_rpm: number | null;
}

export interface BackupRepositoriesTable {
  id: string;
  name: string;
  path: string;
  chunk_size: number;
  key_sealed: string | null;
  created_at: number;
  scanned_at: number | null;
}

export interface BackupsTable {
  id: string;
  repository_id: string;
  vm_id: string;
  vm_name: string;
  taken_at: number;
  finished_at: number;
  parent_id: string | null;
  job_id: string | null;
  task_id: string | null;
  state: string;
  damage: string | null;
  size_bytes: number;
  read_bytes: number;
  stored_bytes: number;
  new_chunks: number;
  shared_chunks: number;
  zero_chunks: number;
  disks: string;
}

export interface SchedulesTable {
  id: string;
  owner_kind: string;
  cron: string;
  time_zone: string;
  enabled: number;
  next_run_at: number | null;
  last_run_at: number | null;
  last_task_id: string | null;
}

export interface BackupJobsTable {
  id: string;
  name: string;
  description: string | null;
  repository_id: string;
  selector: string | null;
  scope_id: string | null;
  schedule: string | null;
  time_zone: string;
  enabled: number;
  retention: string | null;
  max_per_host: number;
  max_per_repository: number;
  /** JSON: where and how each backup a run made is restore-tested; null: none. */
  restore_test: string | null;
  identity_id: string;
  binding_id: string | null;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface BackupJobItemsTable {
  run_task_id: string;
  vm_id: string;
  task_id: string;
}

export interface BackupJobRestoreTestsTable {
  run_task_id: string;
  vm_id: string;
  task_id: string;
}

export interface SitesTable {
  id: string;
  name: string;
  description: string | null;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface SiteHostsTable {
  host_id: string;
  site_id: string;
}

export interface ReplicationsTable {
  id: string;
  vm_id: string;
  vm_name: string;
  target_host_id: string;
  directory: string;
  rpo_seconds: number;
  interval_seconds: number;
  keep_points: number;
  state: string;
  description: string | null;
  next_cycle_at: number | null;
  last_task_id: string | null;
  rpo_exceeded: number;
  created_by: string;
  created_at: number;
  updated_at: number;
  mode: Generated<string>;
  sync_key: string | null;
  sync_state: string | null;
  sync_overlays: string | null;
  sync_since: number | null;
  sync_error: string | null;
}

export interface ReplicaPointsTable {
  id: string;
  replication_id: string;
  seq: number;
  state: string;
  taken_at: number;
  finished_at: number | null;
  task_id: string;
  disks: string;
  read_bytes: number;
}

export interface ImagesTable {
  id: string;
  host_id: string;
  connection_id: string;
  path: string;
  root: string;
  name: string;
  format: string;
  kind: string;
  virtual_bytes: number;
  file_bytes: number;
  allocated_bytes: number;
  backing_file: string | null;
  label: string | null;
  problem: string | null;
  link_target: string | null;
  modified_at: number;
  owner_vm_uuid: string | null;
  owner_vm_name: string | null;
  owner_defined: number;
  status: 'present' | 'missing';
  missing_since: number | null;
  first_seen_at: number;
  scanned_at: number;
}

export interface ImageScansTable {
  host_id: string;
  scanned_at: number;
  duration_ms: number;
  summary: string;
}

export interface ReplicaLeftoversTable {
  id: string;
  vm_id: string;
  host_id: string;
  definition_id: string | null;
  paths: string;
  reason: string;
  created_at: number;
}

export interface RecoveryPlansTable {
  id: string;
  name: string;
  description: string | null;
  source_site_id: string;
  target_site_id: string;
  groups: string;
  network_map: string;
  shutdown_timeout_seconds: number;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface RecoveryRunsTable {
  id: string;
  plan_id: string;
  operation: string;
  state: string;
  task_id: string;
  started_at: number;
  ended_at: number | null;
  error: string | null;
  created_by: string;
}

export interface RecoveryRunVmsTable {
  run_id: string;
  vm_id: string;
  vm_name: string;
  group_index: number;
  state: string;
  point_id: string | null;
  point_taken_at: number | null;
  host_id: string | null;
  run_vm_id: string | null;
  images: string | null;
  started_at: number | null;
  up_at: number | null;
  reason: string | null;
}

export interface Database {
  objects: ObjectsTable;
  location_history: LocationHistoryTable;
  connections: ConnectionsTable;
  identities: IdentitiesTable;
  tokens: TokensTable;
  tasks: TasksTable;
  events: EventsTable;
  audit: AuditTable;
  enrollment_tokens: EnrollmentTokensTable;
  agents: AgentsTable;
  certificate_authorities: CertificateAuthoritiesTable;
  agent_certificates: AgentCertificatesTable;
  rate_cards: RateCardsTable;
  vm_ownership: VmOwnershipTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  roles: RolesTable;
  role_bindings: RoleBindingsTable;
  policies: PoliciesTable;
  placement_plans: PlacementPlansTable;
  host_modes: HostModesTable;
  machine_links: MachineLinksTable;
  ha_vm_descriptions: HaVmDescriptionsTable;
  ha_failovers: HaFailoversTable;
  ha_restarts: HaRestartsTable;
  ha_monitor_restarts: HaMonitorRestartsTable;
  backup_repositories: BackupRepositoriesTable;
  backups: BackupsTable;
  schedules: SchedulesTable;
  backup_jobs: BackupJobsTable;
  backup_job_items: BackupJobItemsTable;
  backup_job_restore_tests: BackupJobRestoreTestsTable;
  sites: SitesTable;
  site_hosts: SiteHostsTable;
  replications: ReplicationsTable;
  replica_points: ReplicaPointsTable;
  replica_leftovers: ReplicaLeftoversTable;
  images: ImagesTable;
  image_scans: ImageScansTable;
  recovery_plans: RecoveryPlansTable;
  recovery_runs: RecoveryRunsTable;
  recovery_run_vms: RecoveryRunVmsTable;
  machine_sensor_samples: MachineSensorSamplesTable;
  vm_metric_samples: VmMetricSamplesTable;
  vm_metric_rollups: VmMetricRollupsTable;
  quotas: QuotasTable;
  quota_reservations: QuotaReservationsTable;
  vm_allocations: VmAllocationsTable;
}
