/** Domain snapshot procedures. */
import { xdrArray, xdrInt, xdrStruct, xdrUint } from '../../xdr/xdr-types.js';
import { remoteProcedure } from '../procedure.js';
import {
  REMOTE_LIST_MAX,
  remoteDomainRef,
  remoteNonnullString,
  remoteSnapshotRef,
} from '../remote-types.js';
import { domainListAllArgs, xmlMessage } from './messages.js';

/** virDomainSnapshotCreateFlags (a selection). */
export const SNAPSHOT_CREATE = {
  redefine: 1,
  current: 2,
  noMetadata: 4,
  halt: 8,
  diskOnly: 16,
  atomic: 128,
  live: 256,
} as const;

/** virDomainSnapshotDeleteFlags. */
export const SNAPSHOT_DELETE = { children: 1, metadataOnly: 2, childrenOnly: 4 } as const;

/** virDomainSnapshotRevertFlags. */
export const SNAPSHOT_REVERT = { running: 1, paused: 2, force: 4 } as const;

const snapRet = xdrStruct({ snap: remoteSnapshotRef });
const snapFlagsArg = xdrStruct({ snap: remoteSnapshotRef, flags: xdrUint });

export const domainSnapshotCreateXml = remoteProcedure(
  'domainSnapshotCreateXml',
  185,
  xdrStruct({ dom: remoteDomainRef, xml_desc: remoteNonnullString, flags: xdrUint }),
  snapRet,
);

export const domainSnapshotGetXmlDesc = remoteProcedure(
  'domainSnapshotGetXmlDesc',
  186,
  snapFlagsArg,
  xmlMessage,
);

export const domainSnapshotLookupByName = remoteProcedure(
  'domainSnapshotLookupByName',
  189,
  xdrStruct({ dom: remoteDomainRef, name: remoteNonnullString, flags: xdrUint }),
  snapRet,
);

export const domainRevertToSnapshot = remoteProcedure('domainRevertToSnapshot', 192, snapFlagsArg);
export const domainSnapshotDelete = remoteProcedure('domainSnapshotDelete', 193, snapFlagsArg);

export const domainListAllSnapshots = remoteProcedure(
  'domainListAllSnapshots',
  274,
  domainListAllArgs,
  xdrStruct({ snapshots: xdrArray(remoteSnapshotRef, REMOTE_LIST_MAX), ret: xdrInt }),
);
