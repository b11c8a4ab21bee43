/** Virtual network procedures. */
import { xdrArray, xdrInt, xdrStruct, xdrUint } from '../../xdr/xdr-types.js';
import { remoteProcedure } from '../procedure.js';
import { REMOTE_LIST_MAX, remoteNetworkRef, remoteNonnullString } from '../remote-types.js';

/** virConnectListAllNetworksFlags. */
export const LIST_NETWORKS = {
  inactive: 1,
  active: 2,
  persistent: 4,
  transient: 8,
  autostart: 16,
  noAutostart: 32,
} as const;

export const networkGetXmlDesc = remoteProcedure(
  'networkGetXmlDesc',
  43,
  xdrStruct({ net: remoteNetworkRef, flags: xdrUint }),
  xdrStruct({ xml: remoteNonnullString }),
);

export const networkLookupByName = remoteProcedure(
  'networkLookupByName',
  46,
  xdrStruct({ name: remoteNonnullString }),
  xdrStruct({ net: remoteNetworkRef }),
);

export const connectListAllNetworks = remoteProcedure(
  'connectListAllNetworks',
  283,
  xdrStruct({ need_results: xdrInt, flags: xdrUint }),
  xdrStruct({ nets: xdrArray(remoteNetworkRef, REMOTE_LIST_MAX), ret: xdrUint }),
);
