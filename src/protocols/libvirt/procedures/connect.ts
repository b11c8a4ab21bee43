/** Connection-level procedures: authentication, open/close, host facts. */
import {
  xdrArray,
  xdrCharArrayString,
  xdrEnum,
  xdrInt,
  xdrStruct,
  xdrUhyper,
  xdrUhyperNumber,
  xdrUint,
} from '../../xdr/xdr-types.js';
import { remoteProcedure } from '../procedure.js';
import { remoteNonnullString, remoteString } from '../remote-types.js';

export const REMOTE_AUTH = { none: 0, sasl: 1, polkit: 2 } as const;

/** VIR_CONNECT_RO: open read-only. */
export const CONNECT_OPEN_FLAGS = { readOnly: 1 } as const;

/** virDrvFeature numbers for connectSupportsFeature. */
export const DRV_FEATURE = {
  migrationV3: 6,
  migrationParams: 8,
  programKeepalive: 10,
  remoteEventCallback: 14,
  remoteCloseCallback: 15,
} as const;

export const connectOpen = remoteProcedure(
  'connectOpen',
  1,
  xdrStruct({ name: remoteString, flags: xdrUint }, 'remote_connect_open_args'),
);

export const connectClose = remoteProcedure('connectClose', 2);

export const connectGetType = remoteProcedure(
  'connectGetType',
  3,
  undefined,
  xdrStruct({ type: remoteNonnullString }),
);

/** Hypervisor version as major * 1,000,000 + minor * 1,000 + release. */
export const connectGetVersion = remoteProcedure(
  'connectGetVersion',
  4,
  undefined,
  xdrStruct({ hv_ver: xdrUhyperNumber }),
);

export const nodeGetInfo = remoteProcedure(
  'nodeGetInfo',
  6,
  undefined,
  xdrStruct(
    {
      model: xdrCharArrayString(32),
      /** KiB */
      memory: xdrUhyperNumber,
      cpus: xdrInt,
      mhz: xdrInt,
      nodes: xdrInt,
      sockets: xdrInt,
      cores: xdrInt,
      threads: xdrInt,
    },
    'remote_node_get_info_ret',
  ),
);

export const connectGetCapabilities = remoteProcedure(
  'connectGetCapabilities',
  7,
  undefined,
  xdrStruct({ capabilities: remoteNonnullString }),
);

export const connectGetHostname = remoteProcedure(
  'connectGetHostname',
  59,
  undefined,
  xdrStruct({ hostname: remoteNonnullString }),
);

export const connectSupportsFeature = remoteProcedure(
  'connectSupportsFeature',
  60,
  xdrStruct({ feature: xdrInt }),
  xdrStruct({ supported: xdrInt }),
);

export const authList = remoteProcedure(
  'authList',
  66,
  undefined,
  xdrStruct({ types: xdrArray(xdrEnum(REMOTE_AUTH, 'remote_auth_type'), 20) }),
);

export const authPolkit = remoteProcedure(
  'authPolkit',
  70,
  undefined,
  xdrStruct({ complete: xdrInt }),
);

export const connectGetUri = remoteProcedure(
  'connectGetUri',
  110,
  undefined,
  xdrStruct({ uri: remoteNonnullString }),
);

export const connectGetLibVersion = remoteProcedure(
  'connectGetLibVersion',
  157,
  undefined,
  xdrStruct({ lib_ver: xdrUhyper }),
);
