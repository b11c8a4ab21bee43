/**
 * File systems frozen through the guest agent for the instant of a point-in-time view: with a
 * guest agent channel and an agent that answers `guest-ping` in time, `guest-fsfreeze-freeze`
 * right before the step (the QMP transaction) and `guest-fsfreeze-thaw` right after it, whether
 * the step succeeded or not. Without a channel, or with an agent that does not answer or refuses to
 * freeze, the step runs all the same (the view is crash-consistent) and the outcome says why: the
 * agent never fails a backup. A guest left frozen (a process killed between freeze and thaw) is
 * thawed by the next quiesce, before it freezes again.
 */
import type { Clock } from '../../core/clock.js';
import { isZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { connectQga, type QgaClient } from '../../protocols/qga/index.js';
import type { DiskQuiesce } from '../facets/disk-streams.js';
import type { QemuVm } from './qemu-vm.js';

/** How long an agent may take to answer the ping (and the sync before it) before it counts as absent. */
export const AGENT_PING_TIMEOUT_MS = 3_000;
/** Freezing syncs every file system first: it may take a while on a busy guest. */
const FREEZE_TIMEOUT_MS = 30_000;
const THAW_TIMEOUT_MS = 10_000;

export interface QuiesceDeps {
  clock: Clock;
  logger: Logger;
  /** Overrides AGENT_PING_TIMEOUT_MS (tests). */
  pingTimeoutMs?: number;
}

/** Runs `step` with the guest's file systems frozen where its agent allows; answers how it went. */
export async function withGuestFrozen<T>(
  vm: QemuVm,
  deps: QuiesceDeps,
  step: () => Promise<T>,
): Promise<{ result: T; quiesce: DiskQuiesce }> {
  if (vm.record.spec.guestAgent !== true)
    return { result: await step(), quiesce: crash('the VM has no guest agent channel') };
  const log = deps.logger;
  let agent: QgaClient | undefined;
  let frozen: number | undefined;
  let freezing = false;
  let why: string | undefined;
  try {
    agent = await connectQga(vm.paths.agentSocket, { clock: deps.clock });
    await agent.ping({ timeoutMs: deps.pingTimeoutMs ?? AGENT_PING_TIMEOUT_MS });
    await thawIfLeftFrozen(vm, agent, log);
    freezing = true;
    frozen = await agent.freeze({ timeoutMs: FREEZE_TIMEOUT_MS });
  } catch (error) {
    const silent = isZenithError(error) && error.code === 'QGA_TIMEOUT';
    why = `the guest agent ${silent ? 'did not answer' : 'failed'}: ${(error as Error).message}`;
    log.warn(
      { vm: vm.id, err: (error as Error).message },
      'file systems not frozen: crash-consistent',
    );
    // A freeze that failed or timed out may have frozen some file systems all the same; an agent
    // that never answered froze nothing (and would hold the backup up once more).
    if (agent && freezing && !agent.closed)
      await agent.thaw({ timeoutMs: THAW_TIMEOUT_MS }).catch(() => undefined);
  }
  if (frozen === undefined) {
    agent?.close();
    return { result: await step(), quiesce: crash(why ?? 'the guest agent failed') };
  }
  const frozenAt = deps.clock.now();
  try {
    return {
      result: await step(),
      quiesce: { quiesced: true, frozenFileSystems: frozen },
    };
  } finally {
    await thaw(vm, agent!, log, frozenAt, deps.clock);
    agent!.close();
  }
}

async function thaw(
  vm: QemuVm,
  agent: QgaClient,
  log: Logger,
  frozenAt: number,
  clock: Clock,
): Promise<void> {
  // Asked twice: a guest must not stay frozen for want of one answer.
  for (let attempt = 1; attempt <= 2; attempt++) {
    try {
      const thawed = await agent.thaw({ timeoutMs: THAW_TIMEOUT_MS });
      log.info(
        { vm: vm.id, thawed, frozenMs: clock.now() - frozenAt },
        'guest file systems thawed after the point-in-time view',
      );
      return;
    } catch (error) {
      log.error(
        { vm: vm.id, attempt, err: (error as Error).message },
        'could not thaw the guest file systems: the next backup thaws them',
      );
    }
  }
}

/**
 * After a restart of the process that runs the VM's QEMU: a guest its predecessor froze and never
 * thawed (killed in between) is thawed now, not at its next backup. Never throws: an agent that
 * does not answer froze nothing it could be asked to thaw.
 */
export async function thawLeftFrozen(vm: QemuVm, deps: QuiesceDeps): Promise<void> {
  if (vm.record.spec.guestAgent !== true || vm.pid === null) return;
  let agent: QgaClient | undefined;
  try {
    agent = await connectQga(vm.paths.agentSocket, { clock: deps.clock });
    await agent.ping({ timeoutMs: deps.pingTimeoutMs ?? AGENT_PING_TIMEOUT_MS });
    await thawIfLeftFrozen(vm, agent, deps.logger);
  } catch (error) {
    deps.logger.debug(
      { vm: vm.id, err: (error as Error).message },
      'the guest agent was not asked whether the guest was left frozen',
    );
  } finally {
    agent?.close();
  }
}

/** A guest frozen by a process that died before it thawed it: thawed now (and said so). */
async function thawIfLeftFrozen(vm: QemuVm, agent: QgaClient, log: Logger): Promise<void> {
  if ((await agent.freezeStatus({ timeoutMs: THAW_TIMEOUT_MS })) !== 'frozen') return;
  const thawed = await agent.thaw({ timeoutMs: THAW_TIMEOUT_MS });
  log.warn({ vm: vm.id, thawed }, 'the guest was left with frozen file systems: thawed');
}

const crash = (why: string): DiskQuiesce => ({ quiesced: false, frozenFileSystems: 0, why });
