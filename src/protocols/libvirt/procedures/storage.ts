/** Storage pool and volume procedures, including volume upload and download streams. */
import { xdrInt, xdrStruct, xdrUhyperNumber, xdrUint } from '../../xdr/xdr-types.js';
import { remoteProcedure } from '../procedure.js';
import { remoteNonnullString, remoteStoragePoolRef, remoteStorageVolRef } from '../remote-types.js';
import {
  listAllAnswer,
  listAllArgs,
  nameMessage,
  poolFlagsMessage,
  poolMessage,
  volFlagsMessage,
  volMessage,
  xmlFlagsMessage,
  xmlMessage,
} from './messages.js';

/** virStoragePoolState. */
export const POOL_STATE = {
  inactive: 0,
  building: 1,
  running: 2,
  degraded: 3,
  inaccessible: 4,
} as const;

/** virStorageVolType. */
export const VOL_TYPE = { file: 0, block: 1, dir: 2, network: 3, netdir: 4, ploop: 5 } as const;

const transferArgs = xdrStruct({
  vol: remoteStorageVolRef,
  offset: xdrUhyperNumber,
  /** 0 = to the end of the volume */
  length: xdrUhyperNumber,
  flags: xdrUint,
});

/** Re-reads what a pool holds (volumes another host made in a shared directory appear). */
export const storagePoolRefresh = remoteProcedure('storagePoolRefresh', 83, poolFlagsMessage);

export const storagePoolLookupByName = remoteProcedure(
  'storagePoolLookupByName',
  84,
  nameMessage,
  poolMessage,
);

export const storagePoolCreateXml = remoteProcedure(
  'storagePoolCreateXml',
  76,
  xmlFlagsMessage,
  poolMessage,
);

export const storagePoolDefineXml = remoteProcedure(
  'storagePoolDefineXml',
  77,
  xmlFlagsMessage,
  poolMessage,
);

export const storagePoolCreate = remoteProcedure('storagePoolCreate', 78, poolFlagsMessage);

export const storagePoolDestroy = remoteProcedure('storagePoolDestroy', 80, poolMessage);
export const storagePoolUndefine = remoteProcedure('storagePoolUndefine', 82, poolMessage);

export const storagePoolGetInfo = remoteProcedure(
  'storagePoolGetInfo',
  87,
  poolMessage,
  xdrStruct(
    {
      /** POOL_STATE */
      state: xdrUint,
      /** bytes */
      capacity: xdrUhyperNumber,
      allocation: xdrUhyperNumber,
      available: xdrUhyperNumber,
    },
    'remote_storage_pool_get_info_ret',
  ),
);

export const storagePoolGetXmlDesc = remoteProcedure(
  'storagePoolGetXmlDesc',
  88,
  poolFlagsMessage,
  xmlMessage,
);

export const storageVolCreateXml = remoteProcedure(
  'storageVolCreateXml',
  93,
  xdrStruct({ pool: remoteStoragePoolRef, xml: remoteNonnullString, flags: xdrUint }),
  volMessage,
);

export const storageVolDelete = remoteProcedure('storageVolDelete', 94, volFlagsMessage);

export const storageVolLookupByName = remoteProcedure(
  'storageVolLookupByName',
  95,
  xdrStruct({ pool: remoteStoragePoolRef, name: remoteNonnullString }),
  volMessage,
);

export const storageVolGetInfo = remoteProcedure(
  'storageVolGetInfo',
  98,
  volMessage,
  xdrStruct(
    { type: xdrInt, capacity: xdrUhyperNumber, allocation: xdrUhyperNumber },
    'remote_storage_vol_get_info_ret',
  ),
);

export const storageVolGetXmlDesc = remoteProcedure(
  'storageVolGetXmlDesc',
  99,
  volFlagsMessage,
  xmlMessage,
);

/** Client-to-daemon stream of the volume's new contents. */
export const storageVolUpload = remoteProcedure(
  'storageVolUpload',
  208,
  transferArgs,
  undefined,
  'write',
);

/** Daemon-to-client stream of the volume's contents. */
export const storageVolDownload = remoteProcedure(
  'storageVolDownload',
  209,
  transferArgs,
  undefined,
  'read',
);

export const connectListAllStoragePools = remoteProcedure(
  'connectListAllStoragePools',
  281,
  listAllArgs,
  listAllAnswer('pools', remoteStoragePoolRef),
);

export const storagePoolListAllVolumes = remoteProcedure(
  'storagePoolListAllVolumes',
  282,
  xdrStruct({ pool: remoteStoragePoolRef, need_results: xdrInt, flags: xdrUint }),
  listAllAnswer('vols', remoteStorageVolRef),
);
