/** Migration and job procedures. */
import {
  xdrInt,
  xdrOpaque,
  xdrStruct,
  xdrUhyper,
  xdrUhyperNumber,
  xdrUint,
} from '../../xdr/xdr-types.js';
import { remoteProcedure } from '../procedure.js';
import {
  REMOTE_MIGRATE_COOKIE_MAX,
  remoteDomainRef,
  remoteString,
  remoteTypedParams,
} from '../remote-types.js';
import { domainFlagsMessage, domainMessage } from './messages.js';

/** virDomainMigrateFlags. */
export const MIGRATE = {
  live: 1,
  peer2peer: 2,
  tunnelled: 4,
  persistDest: 8,
  undefineSource: 16,
  paused: 32,
  nonSharedDisk: 64,
  nonSharedInc: 128,
  changeProtection: 256,
  unsafe: 512,
  offline: 1024,
  compressed: 2048,
  abortOnError: 4096,
  autoConverge: 8192,
  postcopy: 32768,
  tls: 65536,
} as const;

/** VIR_MIGRATE_PARAM_* typed-parameter names. */
export const MIGRATE_PARAM = {
  uri: 'migrate_uri',
  destinationName: 'destination_name',
  destinationXml: 'destination_xml',
  persistentXml: 'persistent_xml',
  /** MiB/s, ullong */
  bandwidth: 'bandwidth',
  graphicsUri: 'graphics_uri',
  listenAddress: 'listen_address',
  disks: 'migrate_disks',
  diskPort: 'disk_port',
  parallelConnections: 'parallel.connections',
} as const;

/** virDomainJobType, the `type` of getJobStats. */
export const JOB_TYPE = {
  none: 0,
  bounded: 1,
  unbounded: 2,
  completed: 3,
  failed: 4,
  cancelled: 5,
} as const;

/** virDomainGetJobStatsFlags. */
export const JOB_STATS = { completed: 1, keepCompleted: 2 } as const;

export const domainGetJobInfo = remoteProcedure(
  'domainGetJobInfo',
  163,
  domainMessage,
  xdrStruct({
    type: xdrInt,
    timeElapsed: xdrUhyperNumber,
    timeRemaining: xdrUhyperNumber,
    dataTotal: xdrUhyperNumber,
    dataProcessed: xdrUhyperNumber,
    dataRemaining: xdrUhyperNumber,
    memTotal: xdrUhyperNumber,
    memProcessed: xdrUhyperNumber,
    memRemaining: xdrUhyperNumber,
    fileTotal: xdrUhyperNumber,
    fileProcessed: xdrUhyperNumber,
    fileRemaining: xdrUhyperNumber,
  }),
);

export const domainAbortJob = remoteProcedure('domainAbortJob', 164, domainMessage);

/** Maximum tolerable downtime in milliseconds. */
export const domainMigrateSetMaxDowntime = remoteProcedure(
  'domainMigrateSetMaxDowntime',
  166,
  xdrStruct({ dom: remoteDomainRef, downtime: xdrUhyper, flags: xdrUint }),
);

/** Maximum bandwidth in MiB/s. */
export const domainMigrateSetMaxSpeed = remoteProcedure(
  'domainMigrateSetMaxSpeed',
  207,
  xdrStruct({ dom: remoteDomainRef, bandwidth: xdrUhyper, flags: xdrUint }),
);

export const domainMigrateGetMaxSpeed = remoteProcedure(
  'domainMigrateGetMaxSpeed',
  242,
  domainFlagsMessage,
  xdrStruct({ bandwidth: xdrUhyper }),
);

export const domainGetJobStats = remoteProcedure(
  'domainGetJobStats',
  298,
  domainFlagsMessage,
  xdrStruct({ type: xdrInt, params: remoteTypedParams }),
);

/**
 * Peer-to-peer (or direct) migration driven by the source daemon: with
 * MIGRATE.peer2peer, `dconnuri` is the destination daemon's URI as the source sees it.
 */
export const domainMigratePerform3Params = remoteProcedure(
  'domainMigratePerform3Params',
  305,
  xdrStruct({
    dom: remoteDomainRef,
    dconnuri: remoteString,
    params: remoteTypedParams,
    cookie_in: xdrOpaque(REMOTE_MIGRATE_COOKIE_MAX),
    flags: xdrUint,
  }),
  xdrStruct({ cookie_out: xdrOpaque(REMOTE_MIGRATE_COOKIE_MAX) }),
);
