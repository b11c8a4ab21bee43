/**
 * Domain backup and checkpoint procedures (libvirt 6.0 and later): a pull-mode backup job exports
 * a point-in-time view of a running domain's disks over QEMU's NBD server, and a checkpoint (a
 * persistent dirty bitmap in each disk it covers) is where a later incremental backup starts.
 * A pull-mode job lasts until it is aborted (virDomainAbortJob, in migration.ts).
 */
import { xdrArray, xdrInt, xdrStruct, xdrUint } from '../../xdr/xdr-types.js';
import { remoteProcedure } from '../procedure.js';
import {
  REMOTE_LIST_MAX,
  remoteCheckpointRef,
  remoteDomainRef,
  remoteNonnullString,
  remoteString,
} from '../remote-types.js';
import { domainFlagsMessage, domainListAllArgs, xmlMessage } from './messages.js';

/** virDomainCheckpointDeleteFlags. */
export const CHECKPOINT_DELETE = { children: 1, metadataOnly: 2, childrenOnly: 4 } as const;

const checkpointFlagsArg = xdrStruct({ checkpoint: remoteCheckpointRef, flags: xdrUint });

export const domainBackupBegin = remoteProcedure(
  'domainBackupBegin',
  421,
  xdrStruct({
    dom: remoteDomainRef,
    backup_xml: remoteNonnullString,
    checkpoint_xml: remoteString,
    flags: xdrUint,
  }),
);

export const domainBackupGetXmlDesc = remoteProcedure(
  'domainBackupGetXmlDesc',
  422,
  domainFlagsMessage,
  xmlMessage,
);

export const domainListAllCheckpoints = remoteProcedure(
  'domainListAllCheckpoints',
  413,
  domainListAllArgs,
  xdrStruct({ checkpoints: xdrArray(remoteCheckpointRef, REMOTE_LIST_MAX), ret: xdrInt }),
);

export const domainCheckpointGetXmlDesc = remoteProcedure(
  'domainCheckpointGetXmlDesc',
  412,
  checkpointFlagsArg,
  xmlMessage,
);

export const domainCheckpointLookupByName = remoteProcedure(
  'domainCheckpointLookupByName',
  415,
  xdrStruct({ dom: remoteDomainRef, name: remoteNonnullString, flags: xdrUint }),
  xdrStruct({ checkpoint: remoteCheckpointRef }),
);

export const domainCheckpointDelete = remoteProcedure(
  'domainCheckpointDelete',
  417,
  checkpointFlagsArg,
);
