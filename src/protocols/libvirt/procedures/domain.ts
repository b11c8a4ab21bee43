/** Domain (VM) procedures: listing, lookup, definition and lifecycle, stats, console. */
import {
  xdrArray,
  xdrInt,
  xdrStruct,
  xdrUhyper,
  xdrUhyperNumber,
  xdrUint,
} from '../../xdr/xdr-types.js';
import { remoteProcedure } from '../procedure.js';
import {
  REMOTE_LIST_MAX,
  remoteDomainRef,
  remoteNonnullString,
  remoteString,
  remoteTypedParams,
  remoteUuid,
} from '../remote-types.js';
import {
  domainFlagsMessage,
  domainMessage,
  listAllAnswer,
  listAllArgs,
  nameMessage,
  xmlFlagsMessage,
  xmlMessage,
} from './messages.js';

/** virDomainState. */
export const DOMAIN_STATE = {
  nostate: 0,
  running: 1,
  blocked: 2,
  paused: 3,
  shutdown: 4,
  shutoff: 5,
  crashed: 6,
  pmsuspended: 7,
} as const;

/** virConnectListAllDomainsFlags. */
export const LIST_DOMAINS = {
  active: 1,
  inactive: 2,
  persistent: 4,
  transient: 8,
  running: 16,
  paused: 32,
  shutoff: 64,
  other: 128,
} as const;

/** virDomainXMLFlags. */
export const DOMAIN_XML = { secure: 1, inactive: 2, updateCpu: 4, migratable: 8 } as const;

/** virDomainUndefineFlagsValues. */
export const UNDEFINE = {
  managedSave: 1,
  snapshotsMetadata: 2,
  nvram: 4,
  keepNvram: 8,
  checkpointsMetadata: 16,
} as const;

/** virDomainStatsTypes for getAllDomainStats. */
export const DOMAIN_STATS = {
  state: 1,
  cpuTotal: 2,
  balloon: 4,
  vcpu: 8,
  interface: 16,
  block: 32,
  perf: 64,
  iothread: 128,
  memory: 256,
  dirtyRate: 512,
} as const;

export const domainCreate = remoteProcedure('domainCreate', 9, domainMessage);

export const domainCreateXml = remoteProcedure(
  'domainCreateXml',
  10,
  xdrStruct({ xml_desc: remoteNonnullString, flags: xdrUint }),
  domainMessage,
);

export const domainDefineXml = remoteProcedure('domainDefineXml', 11, xmlMessage, domainMessage);

export const domainDestroy = remoteProcedure('domainDestroy', 12, domainMessage);

export const domainGetXmlDesc = remoteProcedure(
  'domainGetXmlDesc',
  14,
  domainFlagsMessage,
  xmlMessage,
);

export const domainGetInfo = remoteProcedure(
  'domainGetInfo',
  16,
  domainMessage,
  xdrStruct(
    {
      /** DOMAIN_STATE */
      state: xdrUint,
      /** KiB */
      maxMem: xdrUhyperNumber,
      /** KiB */
      memory: xdrUhyperNumber,
      nrVirtCpu: xdrUint,
      /** nanoseconds */
      cpuTime: xdrUhyper,
    },
    'remote_domain_get_info_ret',
  ),
);

export const domainLookupById = remoteProcedure(
  'domainLookupById',
  22,
  xdrStruct({ id: xdrInt }),
  domainMessage,
);

export const domainLookupByName = remoteProcedure(
  'domainLookupByName',
  23,
  nameMessage,
  domainMessage,
);

export const domainLookupByUuid = remoteProcedure(
  'domainLookupByUuid',
  24,
  xdrStruct({ uuid: remoteUuid }),
  domainMessage,
);

export const domainReboot = remoteProcedure('domainReboot', 27, domainFlagsMessage);
export const domainResume = remoteProcedure('domainResume', 28, domainMessage);
export const domainShutdown = remoteProcedure('domainShutdown', 33, domainMessage);
export const domainSuspend = remoteProcedure('domainSuspend', 34, domainMessage);
export const domainUndefine = remoteProcedure('domainUndefine', 35, domainMessage);

export const domainCreateWithFlags = remoteProcedure(
  'domainCreateWithFlags',
  196,
  domainFlagsMessage,
  domainMessage,
);

/** Opens a console: after the reply, the call's serial carries a duplex stream of the console bytes. */
export const domainOpenConsole = remoteProcedure(
  'domainOpenConsole',
  201,
  xdrStruct({ dom: remoteDomainRef, dev_name: remoteString, flags: xdrUint }),
  undefined,
  'duplex',
);

export const domainGetState = remoteProcedure(
  'domainGetState',
  212,
  domainFlagsMessage,
  xdrStruct({ state: xdrInt, reason: xdrInt }),
);

export const domainUndefineFlags = remoteProcedure('domainUndefineFlags', 231, domainFlagsMessage);
export const domainDestroyFlags = remoteProcedure('domainDestroyFlags', 234, domainFlagsMessage);
export const domainShutdownFlags = remoteProcedure('domainShutdownFlags', 258, domainFlagsMessage);

export const connectListAllDomains = remoteProcedure(
  'connectListAllDomains',
  273,
  listAllArgs,
  listAllAnswer('domains', remoteDomainRef),
);

export const connectGetAllDomainStats = remoteProcedure(
  'connectGetAllDomainStats',
  344,
  xdrStruct({ doms: xdrArray(remoteDomainRef, REMOTE_LIST_MAX), stats: xdrUint, flags: xdrUint }),
  xdrStruct({
    retStats: xdrArray(
      xdrStruct({ dom: remoteDomainRef, params: remoteTypedParams }),
      REMOTE_LIST_MAX,
    ),
  }),
);

export const domainDefineXmlFlags = remoteProcedure(
  'domainDefineXmlFlags',
  350,
  xmlFlagsMessage,
  domainMessage,
);
