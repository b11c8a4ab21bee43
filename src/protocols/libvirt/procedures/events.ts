/** Domain event registration and the event messages the daemon sends (type MESSAGE, routed by procedure). */
import { xdrInt, xdrStruct, type XdrValue } from '../../xdr/xdr-types.js';
import { remoteEvent, remoteProcedure } from '../procedure.js';
import { remoteDomainRef, remoteOptionalDomainRef, remoteTypedParams } from '../remote-types.js';
import { callbackIdMessage, domainMessage } from './messages.js';

/** virDomainEventID: what connectDomainEventCallbackRegisterAny subscribes to. */
export const DOMAIN_EVENT_ID = {
  lifecycle: 0,
  reboot: 1,
  rtcChange: 2,
  watchdog: 3,
  ioError: 4,
  graphics: 5,
  ioErrorReason: 6,
  controlError: 7,
  blockJob: 8,
  diskChange: 9,
  trayChange: 10,
  pmWakeup: 11,
  pmSuspend: 12,
  balloonChange: 13,
  pmSuspendDisk: 14,
  deviceRemoved: 15,
  blockJob2: 16,
  tunable: 17,
  agentLifecycle: 18,
  deviceAdded: 19,
  migrationIteration: 20,
  jobCompleted: 21,
} as const;

/** virDomainEventType: the `event` of a lifecycle message. */
export const LIFECYCLE_EVENT = {
  defined: 0,
  undefined: 1,
  started: 2,
  suspended: 3,
  resumed: 4,
  stopped: 5,
  shutdown: 6,
  pmsuspended: 7,
  crashed: 8,
} as const;

/** Details that matter for location tracking (virDomainEventStartedDetailType etc.). */
export const LIFECYCLE_DETAIL = {
  startedBooted: 0,
  startedMigrated: 1,
  suspendedPaused: 0,
  suspendedMigrated: 1,
  resumedUnpaused: 0,
  resumedMigrated: 1,
  stoppedShutdown: 0,
  stoppedDestroyed: 1,
  stoppedCrashed: 2,
  stoppedMigrated: 3,
} as const;

export const connectDomainEventCallbackRegisterAny = remoteProcedure(
  'connectDomainEventCallbackRegisterAny',
  316,
  xdrStruct({ eventID: xdrInt, dom: remoteOptionalDomainRef }),
  callbackIdMessage,
);

export const connectDomainEventCallbackDeregisterAny = remoteProcedure(
  'connectDomainEventCallbackDeregisterAny',
  317,
  callbackIdMessage,
);

export const domainEventLifecycle = remoteEvent(
  'domainEventCallbackLifecycle',
  318,
  xdrStruct({
    callbackID: xdrInt,
    msg: xdrStruct({ dom: remoteDomainRef, event: xdrInt, detail: xdrInt }),
  }),
);
export type DomainLifecycleEvent = XdrValue<typeof domainEventLifecycle.message>;

export const domainEventReboot = remoteEvent(
  'domainEventCallbackReboot',
  319,
  xdrStruct({ callbackID: xdrInt, msg: domainMessage }),
);
export type DomainRebootEvent = XdrValue<typeof domainEventReboot.message>;

export const domainEventMigrationIteration = remoteEvent(
  'domainEventCallbackMigrationIteration',
  359,
  xdrStruct({ callbackID: xdrInt, dom: remoteDomainRef, iteration: xdrInt }),
);
export type DomainMigrationIterationEvent = XdrValue<typeof domainEventMigrationIteration.message>;

export const domainEventJobCompleted = remoteEvent(
  'domainEventCallbackJobCompleted',
  363,
  xdrStruct({ callbackID: xdrInt, dom: remoteDomainRef, params: remoteTypedParams }),
);
export type DomainJobCompletedEvent = XdrValue<typeof domainEventJobCompleted.message>;

/** The event message each subscribable event ID arrives as. */
export const DOMAIN_EVENT_MESSAGE = {
  [DOMAIN_EVENT_ID.lifecycle]: domainEventLifecycle,
  [DOMAIN_EVENT_ID.reboot]: domainEventReboot,
  [DOMAIN_EVENT_ID.migrationIteration]: domainEventMigrationIteration,
  [DOMAIN_EVENT_ID.jobCompleted]: domainEventJobCompleted,
} as const;
