/**
 * The composition root: builds the store and the services of one control-plane
 * process, each given its collaborators when it is constructed, and starts
 * them in order: store (migrated) → inventory index → identities → connections
 * (first sync) → task recovery. close() stops them in reverse. Where two
 * services need each other, the later one follows the earlier one's events.
 */
import { PowerManager } from '../services/plans/power-management.js';
import { MachineService } from '../services/machines/machine-service.js';
import { machineFamilies } from '../machines/families.js';
import { join } from 'node:path';
import { systemClock, type Clock } from '../core/clock.js';
import { createLogger, type Logger } from '../core/logger.js';
import { SecretBox } from '../core/secret-box.js';
import { DriverRegistry } from '../hypervisors/registry.js';
import { openStore, type Store } from '../store/store.js';
import { AccountingService } from '../services/accounting/accounting-service.js';
import {
  AgentCertificates,
  defaultCertificateValidityMs,
} from '../services/agents/agent-certificates.js';
import { AgentHub } from '../services/agents/agent-hub.js';
import { AgentService } from '../services/agents/agent-service.js';
import { CertificateAuthority } from '../services/agents/certificate-authority.js';
import { AuditService, type Actor } from '../services/audit/audit-service.js';
import { ConnectionService } from '../services/connections/connection-service.js';
import { ConsoleService } from '../services/consoles/console-service.js';
import { EventBus } from '../services/events/event-bus.js';
import { AccessReports } from '../services/identity/access-report.js';
import { AccessService } from '../services/identity/access-service.js';
import { AccessDataGuard } from '../services/identity/access-data-guard.js';
import { QuotaGate } from '../services/quotas/quota-gate.js';
import { QuotaService } from '../services/quotas/quota-service.js';
import { IdentityService } from '../services/identity/identity-service.js';
import { LdapDirectory, type LdapSettings } from '../services/identity/ldap-directory.js';
import { SessionService } from '../services/identity/session-service.js';
import { InventoryService } from '../services/inventory/inventory-service.js';
import {
  defaultMetricSettings,
  MetricHistory,
  type MetricSettings,
} from '../services/metrics/metric-history.js';
import { MetricsSampler } from '../services/metrics/metrics-sampler.js';
import {
  defaultSensorSettings,
  SensorHistory,
  type SensorSettings,
} from '../services/machines/sensor-history.js';
import { SensorSampler } from '../services/machines/sensor-sampler.js';
import { HaService, type HaOptions } from '../services/ha/ha-service.js';
import { VsphereHaEvents } from '../services/ha/vsphere-ha-events.js';
import { HaAdmission } from '../services/ha/admission-service.js';
import { VmMonitor, type VmMonitorOptions } from '../services/ha/vm-monitor.js';
import { EvacuationService } from '../services/plans/evacuation-service.js';
import { HostModeService } from '../services/placement/host-modes.js';
import { PlacementService } from '../services/placement/placement-service.js';
import { PlanService } from '../services/plans/plan-service.js';
import { mergeSettings } from '../services/policy/policy-document.js';
import { RebalanceScheduler } from '../services/plans/rebalance-scheduler.js';
import { PolicyService } from '../services/policy/policy-service.js';
import { TaskService } from '../services/tasks/task-service.js';
import { VmActionService } from '../services/vms/vm-actions.js';
import { VmCloneService } from '../services/vms/vm-clone.js';
import { VmCreateService } from '../services/vms/vm-create.js';
import { VmSnapshotService } from '../services/vms/vm-snapshots.js';
import { ImageLibrary } from '../services/images/image-library.js';
import { VmEditService } from '../services/vms/vm-edit.js';
import { BackupJobs } from '../services/backup/backup-jobs.js';
import { RepositorySchedules } from '../services/backup/repository-schedules.js';
import { BackupService } from '../services/backup/backup-service.js';
import { RecoveryPlans } from '../services/replication/recovery-plans.js';
import { ReplicationService } from '../services/replication/replication-service.js';
import { SiteService } from '../services/replication/sites.js';
import { ReplicationByPolicy } from '../services/replication/replication-by-policy.js';
import { Scheduler } from '../services/scheduler/scheduler.js';

export interface ControlPlaneOptions {
  dataDir: string;
  databaseUrl?: string | undefined;
  adminPassword?: string | undefined;
  clock?: Clock;
  logger?: Logger;
  registry?: DriverRegistry;
  /** Log users in against LDAP/AD too. */
  ldap?: LdapSettings;
  /** Metrics history: sampling period and retention (defaults: 15 s, raw 24 h, rollups 35 days). */
  metrics?: Partial<MetricSettings>;
  /** Machines' sensor history: sampling period, retention, BMCs read at once (60 s, 35 days, 8). */
  machines?: Partial<SensorSettings>;
  /** High availability's timings (checks, grace after a start, descriptions). */
  ha?: HaOptions;
  vmMonitoring?: VmMonitorOptions;
  /** How long an agent's client certificate lasts (default 30 days); renewed at two thirds. */
  agentCertificateValidityMs?: number;
  /** Directories backup repositories may be in (default: the data directory's backups/). */
  backupRoots?: string[];
  /** Scan each host's storage for images when its connection comes up (default true). */
  scanImagesAtConnect?: boolean;
}

export interface ControlPlane {
  store: Store;
  clock: Clock;
  logger: Logger;
  events: EventBus;
  audit: AuditService;
  identities: IdentityService;
  /** Login sessions and API tokens, authentication, and what they keep open. */
  sessions: SessionService;
  /** Groups, roles, role bindings: every authorization decision. */
  access: AccessService;
  /** Who may change the data that decides access (selectors, members, facts conditions read). */
  accessData: AccessDataGuard;
  quotas: QuotaService;
  accessReports: AccessReports;
  inventory: InventoryService;
  connections: ConnectionService;
  tasks: TaskService;
  vms: VmActionService;
  vmCreation: VmCreateService;
  vmClones: VmCloneService;
  snapshots: VmSnapshotService;
  /** The images on hosts' storage (disk images, ISO files, kernels, initrds) and orphaned disks. */
  images: ImageLibrary;
  vmEdits: VmEditService;
  registry: DriverRegistry;
  agents: AgentService;
  agentHub: AgentHub;
  consoles: ConsoleService;
  accounting: AccountingService;
  /** Per-VM metric samples over time. */
  metrics: MetricHistory;
  metricsSampler: MetricsSampler;
  policies: PolicyService;
  placement: PlacementService;
  hostModes: HostModeService;
  plans: PlanService;
  /** Physical machines (BMC connections): links to hypervisor hosts, power, fencing. */
  machines: MachineService;
  /** Power management: hosts emptied and powered off, and woken when placement needs them. */
  powerManagement: PowerManager;
  /** Machines' sensors over time (power draw, temperature, fans) and the energy they drew. */
  sensorHistory: SensorHistory;
  sensorSampler: SensorSampler;
  evacuations: EvacuationService;
  /** High availability: failure detection, fencing, restarts of failed hosts' VMs. */
  ha: HaService;
  vmMonitor: VmMonitor;
  /** Admission control and the what-if report of high availability. */
  haAdmission: HaAdmission;
  /** Backup repositories, the catalogue, backups, restores and verifies. */
  backups: BackupService;
  /** Backup jobs: selectors, schedules, limits and retention; their runs. */
  backupJobs: BackupJobs;
  repositorySchedules: RepositorySchedules;
  /** Sites: the sets of hosts replication and recovery plans go between. */
  sites: SiteService;
  /** Replicated VMs, their cycles, points in time and RPO. */
  replication: ReplicationService;
  /** Recovery plans and their runs (test failover, planned migration, failover). */
  recoveryPlans: RecoveryPlans;
  /** Cron schedules kept in the store, each slot fired once. */
  scheduler: Scheduler;
  /** Set on the very first start when no admin password was given: print it once. */
  generatedAdminPassword: string | undefined;
  close(): Promise<void>;
}

export const systemActor: Actor = { id: 'system', kind: 'system', name: 'zenith' };

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger();
  const store = await openStore({
    dataDir: options.dataDir,
    databaseUrl: options.databaseUrl,
    onIdleConnectionLost: (error) =>
      logger.warn(
        { err: error },
        'PostgreSQL ended an idle connection; the next query opens another',
      ),
  });
  const registry = options.registry ?? new DriverRegistry();
  // BMC families join the hypervisor families (a registry given by a test may bring its own).
  for (const family of machineFamilies)
    if (!registry.list().some((known) => known.type === family.type)) registry.register(family);
  const events = new EventBus(store.db, clock, logger);
  const audit = new AuditService(store, clock);
  const sessions = new SessionService(store, clock, {
    onLiveSessionError: (error) =>
      logger.warn({ err: error }, 'a live session failed to close or to look again'),
  });
  const identities = new IdentityService(store, clock, sessions, {
    directory: options.ldap ? new LdapDirectory(options.ldap) : null,
  });
  const inventory = new InventoryService(store, events, clock, logger);
  // Open event streams and consoles follow access changes (and revocations: session-service).
  const access = new AccessService(store, clock, identities, inventory, {
    onReloaded: () => sessions.live.accessChanged(),
  });
  // Identity facts for binding conditions: identities' attributes (never what an agent reports).
  identities.followChanges((identity) =>
    access.setSubjectAttributes(identity, identity.attributes),
  );
  if (options.ldap) {
    const groupMap = options.ldap.groupMap;
    identities.followDirectoryLogins((identityId, groups) =>
      access.syncDirectoryGroups(identityId, groups, groupMap),
    );
  }
  const secrets = SecretBox.fromFile(join(options.dataDir, 'secret.key'));
  const agentHub = new AgentHub(logger);
  const connections = new ConnectionService({
    store,
    registry,
    inventory,
    identities,
    events,
    secrets,
    clock,
    logger,
    stateDir: options.dataDir,
    agentLink: (agentId) => agentHub.link(agentId),
  });
  const resolveActor = async (id: string): Promise<Actor> => {
    if (id === systemActor.id) return systemActor;
    const identity = await identities.get(id).catch(() => undefined);
    return identity
      ? { id: identity.id, kind: identity.kind, name: identity.name }
      : { id, kind: 'unknown', name: id };
  };
  const tasks = new TaskService({ store, events, audit, clock, logger, resolveActor });
  // High availability's admission control (built below, once placement is) may refuse starts and moves.
  const vms = new VmActionService(inventory, connections, tasks, {
    admitStart: (vmId, action) => haAdmission.admitStart(vmId, action),
    admitMigration: (vmId, targetHostId) => haAdmission.admitMigration(vmId, targetHostId),
    hostFailed: (hostId) => ha.hostState(hostId) === 'failed',
  });
  const certificateAuthority = await CertificateAuthority.loadOrCreate({ store, secrets, clock });
  const agentCertificates = new AgentCertificates({
    store,
    clock,
    ca: certificateAuthority,
    validityMs: options.agentCertificateValidityMs ?? defaultCertificateValidityMs,
  });
  // An enrolled agent gets a connection of its own; when its channel opens, that connection syncs at once.
  const agents = new AgentService({
    store,
    identities,
    events,
    clock,
    certificates: agentCertificates,
    hostNamed: async (hostname, replacing) => {
      // The hosts of the agents being replaced are this host's own: not in the way.
      const theirs = new Set<string>();
      for (const agent of replacing) {
        const connection = await connections.findBySetting('agentId', agent.id);
        if (connection) theirs.add(connection.id);
      }
      const wanted = hostname.toLowerCase();
      const host = inventory.index
        .ofKind('host')
        .find(
          (object) =>
            object.name.toLowerCase() === wanted &&
            !(object.connectionId !== null && theirs.has(object.connectionId)),
        );
      return host ? { id: host.id, name: host.name } : null;
    },
    onEnrolled: async (agent, replaces) => {
      // A host enrolled again keeps its connection, so its host and VMs stay the same objects.
      const previous = replaces
        ? await connections.findBySetting('agentId', replaces.id)
        : undefined;
      if (previous) {
        await connections.rebind(previous.id, { agentId: agent.id });
        return;
      }
      const suffix = agent.id.slice(-6).toLowerCase();
      const name = `agent-${agent.hostname}`.slice(0, 56).replace(/[^a-zA-Z0-9._-]/g, '-');
      const taken = (await connections.list()).some((c) => c.name === name);
      await connections.add(
        {
          name: taken ? `${name}-${suffix}` : name,
          type: 'agent',
          settings: { agentId: agent.id },
        },
        { waitForSync: false },
      );
    },
  });
  // The connections reach agents through the hub: the hub cannot be given them, it is followed.
  agentHub.followConnected((agentId) => {
    connections
      .findBySetting('agentId', agentId)
      .then((connection) => connection && connections.nudge(connection.id))
      .catch((error: unknown) =>
        logger.warn({ err: error, agentId }, "the agent's connection could not be nudged"),
      );
  });
  const consoles = new ConsoleService({ inventory, connections, audit, sessions, clock });
  const policies = new PolicyService({ store, inventory, events, clock, logger });
  const hostModes = new HostModeService({ store, inventory, events, clock });
  const machines = new MachineService({
    store,
    inventory,
    connections,
    tasks,
    events,
    clock,
    logger,
  });
  const placement: PlacementService = new PlacementService({
    inventory,
    policies,
    connections,
    clock,
    modes: () => hostModes.modes,
    // Power management wakes hosts in standby when a placement needs their room (built below).
    wake: (hostId: string, signal: AbortSignal): Promise<void> =>
      powerManagement.wake(hostId, signal),
    admission: {
      enabled: () => haAdmission.enabled(),
      admitNew: (model, vm, hostId) => haAdmission.admitNew(model, vm, hostId),
    },
  });
  const haAdmission: HaAdmission = new HaAdmission({ placement, policies });
  const plans = new PlanService({
    store,
    clock,
    logger,
    inventory,
    placement,
    modes: hostModes,
    tasks,
    vms,
  });
  const evacuations = new EvacuationService({
    plans: plans.plans,
    inventory,
    placement,
    modes: hostModes,
    tasks,
    vms,
    clock,
  });
  const powerManagement: PowerManager = new PowerManager({
    inventory,
    placement,
    plans,
    hostModes,
    machines,
    tasks,
    clock,
    logger,
  });
  const ha = new HaService({
    store,
    clock,
    logger,
    inventory,
    connections,
    agentHub,
    placement,
    policies,
    machines,
    tasks,
    events,
    audit,
    identities,
    ...(options.ha ? { options: options.ha } : {}),
  });
  // Restarts VMs whose QEMU died or whose guest panicked, on their host (HA's vmMonitoring).
  const vmMonitor = new VmMonitor({
    store,
    clock,
    logger: logger.child({ room: 'ha' }),
    inventory,
    placement,
    policies,
    vms,
    tasks,
    events,
    ha,
    ...(options.vmMonitoring ? { options: options.vmMonitoring } : {}),
  });
  const powerSchedule = new RebalanceScheduler(
    clock,
    () => {
      const settings = mergeSettings(policies.index.global).powerManagement;
      return settings?.enabled && settings.everyMinutes
        ? { everyMinutes: settings.everyMinutes }
        : undefined;
    },
    () => powerManagement.scheduled(),
    logger,
    'scheduled power management',
  );
  const rebalancer = new RebalanceScheduler(
    clock,
    () => mergeSettings(policies.index.global).rebalance,
    (settings) => plans.scheduledRebalance(settings, systemActor),
    logger,
  );
  const quotas = new QuotaService(store, clock, access);
  const quotaGate = new QuotaGate(quotas, inventory);
  const vmCreation = new VmCreateService(inventory, connections, tasks, placement, quotaGate);
  const vmClones = new VmCloneService(inventory, connections, tasks, quotaGate);
  const snapshots = new VmSnapshotService(inventory, connections, tasks);
  const images = new ImageLibrary({
    store,
    inventory,
    connections,
    tasks,
    events,
    clock,
    logger: logger.child({ room: 'images' }),
    scannerActor: async () => systemActor,
  });
  const sensorHistory = new SensorHistory(store, clock, {
    ...defaultSensorSettings,
    ...options.machines,
  });
  const accounting = new AccountingService(store, inventory, clock, sensorHistory);
  const vmEdits = new VmEditService(inventory, connections, tasks, quotaGate);
  const backupRoots = options.backupRoots ?? [join(options.dataDir, 'backups')];
  BackupService.ensureRoots(backupRoots);
  const backups = new BackupService({
    store,
    inventory,
    connections,
    tasks,
    secrets,
    clock,
    logger,
    roots: backupRoots,
    quotas: quotaGate,
  });
  const scheduler = new Scheduler({ store, clock, logger: logger.child({ room: 'scheduler' }) });
  const backupJobs = new BackupJobs({
    store,
    inventory,
    access,
    identities,
    tasks,
    scheduler,
    backups,
    clock,
    logger,
  });
  const repositorySchedules = new RepositorySchedules({
    store,
    scheduler,
    tasks,
    backups,
    clock,
    logger,
  });
  const sites = new SiteService({ store, inventory, clock });
  const replication = new ReplicationService({
    store,
    inventory,
    connections,
    tasks,
    events,
    identities,
    sites,
    secrets,
    clock,
    logger: logger.child({ room: 'replication' }),
  });
  const recoveryPlans = new RecoveryPlans({
    store,
    inventory,
    connections,
    tasks,
    events,
    machines,
    placement,
    sites,
    replication,
    clock,
    logger: logger.child({ room: 'replication' }),
  });
  const replicationByPolicy = new ReplicationByPolicy({
    store,
    inventory,
    connections,
    policies,
    placement,
    sites,
    replication,
    events,
    clock,
    logger: logger.child({ room: 'replication' }),
  });
  const metrics = new MetricHistory(store, clock, { ...defaultMetricSettings, ...options.metrics });
  const metricsSampler = new MetricsSampler({
    clock,
    history: metrics,
    inventory,
    connections,
    logger,
  });
  const sensorSampler = new SensorSampler({
    clock,
    history: sensorHistory,
    inventory,
    connections,
    logger,
  });

  try {
    await inventory.load();
    await access.load();
    await policies.load();
    await hostModes.load();
    const bootstrap = await identities.bootstrap(options.adminPassword);
    if (bootstrap.created)
      await audit.append([
        {
          actor: systemActor,
          action: 'identity.bootstrap',
          targetId: null,
          params: { user: 'admin' },
          result: 'succeeded',
        },
      ]);
    const eventRetentionMs = 14 * 86_400_000;
    await events.prune(eventRetentionMs);
    const pruneTimer = setInterval(
      () =>
        void events
          .prune(eventRetentionMs)
          .catch((error: unknown) => logger.warn({ err: error }, 'event pruning failed')),
      3_600_000,
    );
    pruneTimer.unref();
    // A migration cut off by the restart may have landed: its destination may report the VM.
    await vms.allowInterruptedMoves(clock.now() + 10 * 60_000);
    // The same for a failover's restart cut off by the restart.
    await ha.allowInterruptedRestarts(clock.now() + 10 * 60_000);
    // The hosts VMs were failed over away from (by recovery plans) still define them, stopped.
    await recoveryPlans.prepareAfterRestart(clock.now() + 10 * 60_000);
    // Live sessions end at their token's expiry and after revocations by another replica.
    const sessionSweep = setInterval(
      () =>
        void sessions
          .sweepSessions()
          .catch((error: unknown) => logger.warn({ err: error }, 'the session sweep failed')),
      15_000,
    );
    sessionSweep.unref();
    // Links between machines and hosts follow the inventory from before the first sync on.
    await machines.start();
    // vSphere HA's host states, as events, from the same point on.
    const vsphereHaEvents = new VsphereHaEvents({ inventory, events, logger });
    vsphereHaEvents.start();
    // Hosts are scanned for images as their connections come up, the first time too.
    if (options.scanImagesAtConnect ?? true) images.start();
    await connections.startAll();
    const recovered = await tasks.recover();
    if (recovered.resumed + recovered.completed + recovered.retried + recovered.interrupted > 0)
      logger.info(recovered, 'tasks recovered after restart');
    rebalancer.start();
    powerSchedule.start();
    scheduler.start();
    metricsSampler.start();
    sensorSampler.start();
    await ha.start();
    await vmMonitor.start();
    await replication.start();
    replicationByPolicy.start();
    return {
      store,
      clock,
      logger,
      events,
      audit,
      identities,
      sessions,
      access,
      accessData: new AccessDataGuard(access, inventory),
      quotas,
      accessReports: new AccessReports(store, access, identities, inventory),
      inventory,
      connections,
      tasks,
      vms,
      vmCreation,
      vmClones,
      snapshots,
      images,
      vmEdits,
      registry,
      agents,
      agentHub,
      consoles,
      accounting,
      metrics,
      metricsSampler,
      policies,
      placement,
      hostModes,
      plans,
      evacuations,
      machines,
      powerManagement,
      sensorHistory,
      sensorSampler,
      ha,
      vmMonitor,
      haAdmission,
      backups,
      backupJobs,
      repositorySchedules,
      sites,
      replication,
      recoveryPlans,
      scheduler,
      generatedAdminPassword: bootstrap.generatedPassword,
      async close() {
        await replicationByPolicy.stop();
        await replication.stop();
        await vmMonitor.stop();
        await ha.stop();
        agentHub.closeAll();
        clearInterval(pruneTimer);
        clearInterval(sessionSweep);
        await scheduler.stop();
        await rebalancer.stop();
        await powerSchedule.stop();
        await metricsSampler.stop();
        await sensorSampler.stop();
        await tasks.drain();
        machines.stop();
        images.stop();
        await machines.settled();
        vsphereHaEvents.stop();
        await vsphereHaEvents.settled();
        await connections.stopAll();
        await store.close();
      },
    };
  } catch (error) {
    await connections.stopAll().catch(() => undefined);
    await store.close();
    throw error;
  }
}
