/** Virtual network procedures. */
import { xdrStruct, xdrUint } from '../../xdr/xdr-types.js';
import { remoteProcedure } from '../procedure.js';
import { remoteNetworkRef } from '../remote-types.js';
import { listAllAnswer, listAllArgs, nameMessage, xmlMessage } from './messages.js';

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
  xmlMessage,
);

export const networkLookupByName = remoteProcedure(
  'networkLookupByName',
  46,
  nameMessage,
  xdrStruct({ net: remoteNetworkRef }),
);

export const connectListAllNetworks = remoteProcedure(
  'connectListAllNetworks',
  283,
  listAllArgs,
  listAllAnswer('nets', remoteNetworkRef),
);
