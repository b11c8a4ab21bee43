#!/usr/bin/env node
/** The `zenith` command. */
import { Command, CommanderError } from 'commander';
import { registerAccounting } from './commands/accounting.js';
import { registerAccess } from './commands/access.js';
import { registerAdmin } from './commands/admin.js';
import { registerAgent, registerAgents } from './commands/agent.js';
import { registerHosts } from './commands/hosts.js';
import { registerOperations } from './commands/operations.js';
import { registerPlace } from './commands/place.js';
import { registerPlans } from './commands/plans.js';
import { registerPolicy } from './commands/policy.js';
import { registerQuotas } from './commands/quotas.js';
import { registerResourceGroups } from './commands/resource-groups.js';
import { registerServe } from './commands/serve.js';
import { registerSession } from './commands/session.js';
import { registerVms } from './commands/vms.js';
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

registerServe(program);
registerAgent(program);
registerAgents(program);
registerSession(program);
registerHosts(program);
registerVms(program);
registerOperations(program);
registerPolicy(program);
registerPlace(program);
registerPlans(program);
registerAdmin(program);
registerAccounting(program);
registerAccess(program);
registerQuotas(program);
registerResourceGroups(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  process.exit(reportError(error));
}
