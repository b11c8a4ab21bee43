/**
 * The routes of one simulated machine in the Redfish service simulator
 * (./redfish-simulator.ts): its ComputerSystem (with the Reset action, boot
 * override and indicator PATCH, Processors, Memory, EthernetInterfaces,
 * Storage and Drives), its Manager with VirtualMedia, and its Chassis with
 * Thermal, Power and, when asked, Sensors.
 */
import {
  bootTargets,
  chassis,
  collection,
  drive,
  errorBody,
  manager,
  power,
  resetTypes,
  sensors,
  system,
  systemParts,
  thermal,
  virtualMedia,
  type SimulatedMachineState,
} from './redfish-simulator-resources.js';

export interface Responder {
  get: (doc: unknown) => void;
  send: (status: number, doc?: unknown, headers?: Record<string, string>) => void;
  notFound: () => void;
  badMethod: () => void;
}

export interface MachineActions {
  /** Carries out a ComputerSystem.Reset of an allowed type. */
  reset: (machine: SimulatedMachineState, type: string) => Promise<void>;
  sensorResources: boolean;
}

/** Answers a request under /redfish/v1/{Systems,Managers,Chassis}/{machine id}/…; `parts` start at the kind. */
export async function routeMachine(
  m: SimulatedMachineState,
  parts: string[],
  method: string,
  body: unknown,
  { get, send, notFound, badMethod }: Responder,
  { reset, sensorResources }: MachineActions,
): Promise<void> {
  const [kind, , sub, subId, deeper, deeperId] = parts;
  if (kind === 'Systems') {
    if (sub === undefined) {
      if (method === 'PATCH') return patchSystem(m, body, send);
      return get(system(m));
    }
    if (sub === 'Actions' && subId === 'ComputerSystem.Reset') {
      if (method !== 'POST') return badMethod();
      const type = (body as Record<string, unknown> | undefined)?.ResetType;
      if (typeof type !== 'string' || !resetTypes.includes(type))
        return send(
          400,
          errorBody('ActionParameterValueNotInList', `ResetType ${String(type)} is not allowed`),
        );
      await reset(m, type);
      return send(204);
    }
    const members = systemParts(m)[sub];
    if (!members) return notFound();
    const base = `/redfish/v1/Systems/${m.id}/${sub}`;
    if (subId === undefined)
      return get(
        collection(
          base,
          `${sub === 'Memory' ? 'Memory' : sub.replace(/s$/, '')}Collection`,
          `${sub} Collection`,
          members.map((d) => String(d['@odata.id'])),
        ),
      );
    const member = members.find((d) => d.Id === subId);
    if (!member) return notFound();
    if (deeper === undefined) return get(member);
    if (sub === 'Storage' && deeper === 'Drives' && deeperId) {
      const doc = drive(m, deeperId);
      return doc ? get(doc) : notFound();
    }
    return notFound();
  }
  if (kind === 'Managers') {
    if (sub === undefined) return get(manager(m));
    if (sub !== 'VirtualMedia') return notFound();
    const base = `/redfish/v1/Managers/${m.id}/VirtualMedia`;
    if (subId === undefined)
      return get(collection(base, 'VirtualMediaCollection', 'Virtual Media', [`${base}/Cd`]));
    if (subId !== 'Cd') return notFound();
    if (deeper === undefined) {
      if (method === 'PATCH') {
        const { Image, Inserted } = (body ?? {}) as Record<string, unknown>;
        if (typeof Image === 'string') m.media = { inserted: Inserted !== false, image: Image };
        else if (Image === null || Inserted === false) m.media = { inserted: false };
        return send(204);
      }
      return get(virtualMedia(m));
    }
    if (deeper === 'Actions' && method === 'POST') {
      if (deeperId === 'VirtualMedia.InsertMedia') {
        const image = (body as Record<string, unknown> | undefined)?.Image;
        if (typeof image !== 'string' || image === '')
          return send(400, errorBody('PropertyMissing', 'Image is required'));
        m.media = { inserted: true, image };
        return send(204);
      }
      if (deeperId === 'VirtualMedia.EjectMedia') {
        m.media = { inserted: false };
        return send(204);
      }
    }
    return notFound();
  }
  if (kind === 'Chassis') {
    if (sub === undefined) return get(chassis(m, sensorResources === true));
    if (sub === 'Sensors' && sensorResources) {
      const members = sensors(m);
      if (subId === undefined)
        return get(
          collection(
            `/redfish/v1/Chassis/${m.id}/Sensors`,
            'SensorCollection',
            'Sensors',
            members.map((d) => String(d['@odata.id'])),
          ),
        );
      const member = members.find((d) => d.Id === subId);
      return member ? get(member) : notFound();
    }
    if (sub === 'Thermal') return get(thermal(m));
    if (sub === 'Power') return get(power(m));
  }
  return notFound();
}

function patchSystem(
  m: SimulatedMachineState,
  body: unknown,
  send: (status: number, doc?: unknown) => void,
): void {
  const patch = (body ?? {}) as Record<string, unknown>;
  const boot = patch.Boot as Record<string, unknown> | undefined;
  if (boot) {
    const target = boot.BootSourceOverrideTarget;
    const enabled = boot.BootSourceOverrideEnabled;
    if (target !== undefined && (typeof target !== 'string' || !bootTargets.includes(target)))
      return send(
        400,
        errorBody('PropertyValueNotInList', `BootSourceOverrideTarget ${JSON.stringify(target)}`),
      );
    if (
      enabled !== undefined &&
      enabled !== 'Once' &&
      enabled !== 'Continuous' &&
      enabled !== 'Disabled'
    )
      return send(
        400,
        errorBody('PropertyValueNotInList', `BootSourceOverrideEnabled ${JSON.stringify(enabled)}`),
      );
    if (typeof target === 'string') m.boot.target = target;
    if (enabled !== undefined) m.boot.enabled = enabled;
    else if (typeof target === 'string' && m.boot.enabled === 'Disabled') m.boot.enabled = 'Once';
  }
  if (
    patch.IndicatorLED === 'Lit' ||
    patch.IndicatorLED === 'Off' ||
    patch.IndicatorLED === 'Blinking'
  )
    m.indicatorLed = patch.IndicatorLED;
  if (typeof patch.LocationIndicatorActive === 'boolean')
    m.indicatorLed = patch.LocationIndicatorActive ? 'Lit' : 'Off';
  return send(204);
}
