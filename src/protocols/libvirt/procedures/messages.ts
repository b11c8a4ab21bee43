/**
 * Messages many remote procedures share: an object reference alone or with flags, an XML
 * document, a name, and the arguments and answers of the procedures that list every object of a
 * kind.
 */
import { xdrArray, xdrInt, xdrStruct, xdrUint, type XdrType } from '../../xdr/xdr-types.js';
import {
  REMOTE_LIST_MAX,
  remoteDomainRef,
  remoteNonnullString,
  remoteStoragePoolRef,
  remoteStorageVolRef,
} from '../remote-types.js';

export const xmlMessage = xdrStruct({ xml: remoteNonnullString });
export const xmlFlagsMessage = xdrStruct({ xml: remoteNonnullString, flags: xdrUint });
export const nameMessage = xdrStruct({ name: remoteNonnullString });
export const domainMessage = xdrStruct({ dom: remoteDomainRef });
export const domainFlagsMessage = xdrStruct({ dom: remoteDomainRef, flags: xdrUint });
export const poolMessage = xdrStruct({ pool: remoteStoragePoolRef });
export const poolFlagsMessage = xdrStruct({ pool: remoteStoragePoolRef, flags: xdrUint });
export const volMessage = xdrStruct({ vol: remoteStorageVolRef });
export const volFlagsMessage = xdrStruct({ vol: remoteStorageVolRef, flags: xdrUint });
export const callbackIdMessage = xdrStruct({ callbackID: xdrInt });

/** The arguments of the connectListAll… procedures: whether to answer the objects, and filters. */
export const listAllArgs = xdrStruct({ need_results: xdrInt, flags: xdrUint });
/** The same for the objects of one domain (its snapshots, its checkpoints). */
export const domainListAllArgs = xdrStruct({
  dom: remoteDomainRef,
  need_results: xdrInt,
  flags: xdrUint,
});

/** The answer of a list-every-object procedure: the objects under `key`, and how many there are. */
export function listAllAnswer<const Key extends string, T>(key: Key, item: XdrType<T>) {
  const fields = { [key]: xdrArray(item, REMOTE_LIST_MAX), ret: xdrUint } as {
    [K in Key]: XdrType<T[]>;
  } & { ret: typeof xdrUint };
  return xdrStruct(fields);
}
