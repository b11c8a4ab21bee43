/**
 * libvirt's domain state and reason numbers (virDomainState and the
 * vir*Reason enums of libvirt-domain.h, which never change) as Zenith power
 * states with a readable reason.
 */
import { DOMAIN_STATE } from '../../protocols/libvirt/procedures/domain.js';
import type { PowerState, StopCause } from '../driver.js';

const reasons: Record<number, readonly string[]> = {
  [DOMAIN_STATE.running]: [
    'unknown',
    'booted',
    'migrated',
    'restored',
    'from-snapshot',
    'unpaused',
    'migration-cancelled',
    'save-cancelled',
    'wakeup',
    'crashed',
    'postcopy',
    'postcopy-failed',
  ],
  [DOMAIN_STATE.blocked]: ['unknown'],
  [DOMAIN_STATE.paused]: [
    'unknown',
    'user',
    'migration',
    'save',
    'dump',
    'io-error',
    'watchdog',
    'from-snapshot',
    'shutting-down',
    'snapshot',
    'api-error',
    'postcopy',
    'postcopy-failed',
    'starting-up',
  ],
  [DOMAIN_STATE.shutdown]: ['unknown', 'user'],
  [DOMAIN_STATE.shutoff]: [
    'unknown',
    'shutdown',
    'destroyed',
    'crashed',
    'migrated',
    'saved',
    'failed',
    'from-snapshot',
    'daemon',
  ],
  [DOMAIN_STATE.crashed]: ['unknown', 'panicked'],
  [DOMAIN_STATE.pmsuspended]: ['unknown'],
};

const PAUSED_BY_USER = 1;

export interface DomainPower {
  powerState: PowerState;
  /** e.g. running/booted, paused/user, shutoff/destroyed */
  reason: string;
  /** Why a stopped domain stopped, where libvirt's reason tells (see StopCause); null otherwise. */
  stopCause: StopCause | null;
}

/**
 * libvirt's reason for a stop as a StopCause: shutoff/crashed is libvirt's word for a QEMU that
 * ended without a shutdown (killed, crashed, or destroyed after a guest panic); a guest's own
 * power-off and libvirt's shutdown request both read shutoff/shutdown (neither is restarted).
 * Migrated, failed to start, killed by the daemon, unknown: null.
 */
function stopCauseOf(state: number, reasonName: string): StopCause | null {
  if (state === DOMAIN_STATE.crashed) return 'guest-panic';
  if (state !== DOMAIN_STATE.shutoff) return null;
  switch (reasonName) {
    case 'crashed':
      return 'crashed';
    case 'shutdown':
      return 'guest-shutdown';
    case 'destroyed':
    case 'saved':
    case 'from-snapshot':
      return 'requested';
    default:
      return null;
  }
}

export function domainPower(state: number, reason: number): DomainPower {
  const stateName =
    Object.entries(DOMAIN_STATE).find(([, value]) => value === state)?.[0] ?? `state-${state}`;
  const reasonName = reasons[state]?.[reason] ?? `reason-${reason}`;
  const described = `${stateName}/${reasonName}`;
  const stopCause = stopCauseOf(state, reasonName);
  switch (state) {
    // Shutting down (state shutdown): the guest still runs until it is off.
    case DOMAIN_STATE.running:
    case DOMAIN_STATE.blocked:
    case DOMAIN_STATE.shutdown:
      return { powerState: 'running', reason: described, stopCause };
    case DOMAIN_STATE.paused:
      // Paused by an operator is "suspended"; paused by libvirt itself (migration, I/O error, …) is "paused".
      return {
        powerState: reason === PAUSED_BY_USER ? 'suspended' : 'paused',
        reason: described,
        stopCause,
      };
    case DOMAIN_STATE.pmsuspended:
      return { powerState: 'paused', reason: described, stopCause };
    case DOMAIN_STATE.shutoff:
    case DOMAIN_STATE.crashed:
      return { powerState: 'stopped', reason: described, stopCause };
    default:
      return { powerState: 'unknown', reason: described, stopCause };
  }
}
