#!/usr/bin/env node
/** The `zenith` command. */
import { Command, CommanderError } from 'commander';
import { registerAccess } from './commands/access.js';
import { registerAccounting } from './commands/accounting.js';
import { registerAgent, registerAgentSentinel } from './commands/agent.js';
import { registerAgents } from './commands/agents.js';
import { registerAudit } from './commands/audit.js';
import { registerBackups } from './commands/backups.js';
import { registerImages } from './commands/images.js';
import { registerRecoveryPlans } from './commands/recovery-plans.js';
import { registerReplication } from './commands/replication.js';
import { registerSites } from './commands/sites.js';
import { registerBindings } from './commands/bindings.js';
import { registerConnections } from './commands/connections.js';
import { registerEvents } from './commands/events.js';
import { registerGroups } from './commands/groups.js';
import { registerHa } from './commands/ha.js';
import { registerHosts } from './commands/hosts.js';
import { registerLogin } from './commands/login.js';
import { registerLogout } from './commands/logout.js';
import { registerPlace } from './commands/place.js';
import { registerPlans } from './commands/plans.js';
import { registerPolicy } from './commands/policy.js';
import { registerQuotas } from './commands/quotas.js';
import { registerRebalance } from './commands/rebalance.js';
import { registerResourceGroups } from './commands/resource-groups.js';
import { registerRoles } from './commands/roles.js';
import { registerServe } from './commands/serve.js';
import { registerTasks } from './commands/tasks.js';
import { registerTokens } from './commands/tokens.js';
import { registerUsers } from './commands/users.js';
import { registerVms } from './commands/vms.js';
import { registerWhoami } from './commands/whoami.js';
import { reportError } from './output.js';
import { exitOnUnhandledRejection } from '../core/unhandled-rejections.js';

// Before anything runs: a rejection nobody handles ends the command with a coded line, never silently.
exitOnUnhandledRejection();

const program = new Command('zenith')
  .description('Zenith: one control plane for virtual machines on heterogeneous hypervisors')
  .version('0.1.0')
  .option('--server <url>', 'the Zenith server (default: from zenith login, or ZENITH_SERVER)')
  .option('--json', 'machine-readable output')
  .showHelpAfterError()
  .exitOverride();

// One command noun per file (commands/<noun>.ts, its subcommands in <noun>-<subcommand>.ts), in the
// order `zenith --help` lists them.
for (const register of [
  registerServe,
  registerAgent,
  registerAgentSentinel,
  registerAgents,
  registerLogin,
  registerLogout,
  registerWhoami,
  registerHosts,
  registerVms,
  registerImages,
  registerBackups,
  registerSites,
  registerReplication,
  registerRecoveryPlans,
  registerConnections,
  registerTasks,
  registerEvents,
  registerPolicy,
  registerPlace,
  registerRebalance,
  registerPlans,
  registerHa,
  registerAudit,
  registerUsers,
  registerTokens,
  registerAccounting,
  registerAccess,
  registerGroups,
  registerRoles,
  registerBindings,
  registerQuotas,
  registerResourceGroups,
])
  register(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  process.exit(reportError(error));
}
