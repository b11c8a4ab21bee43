import {
  bootMachineOnce,
  ejectMachineMedia,
  fenceMachine,
  getMachine,
  identifyMachine,
  insertMachineMedia,
  linkMachine,
  machineEnergy,
  machineSensorHistory,
  machineSensors,
  powerMachine,
  unlinkMachine,
} from '../../api/machines.js';
import { ZenithError } from '../../core/errors.js';
import type { AccessDataGuard } from '../../services/identity/access-data-guard.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import type { MachineService, MachineView } from '../../services/machines/machine-service.js';
import type { SensorHistory } from '../../services/machines/sensor-history.js';
import { actorOf, principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';
import { acceptTask } from '../task-reply.js';
import { objectView } from './inventory.js';

export interface MachineRouteServices {
  access: AccessService;
  accessData: AccessDataGuard;
  inventory: InventoryService;
  machines: MachineService;
  sensorHistory: SensorHistory;
}

/**
 * Every route names the host it acts on and is checked on it. Acting on a hypervisor host acts on
 * the machine linked to it: a link needs host.link on both, and identity.manage on both when a
 * condition or selector reads the facts a link changes, so a link never widens anyone's reach.
 */
export async function machineRoutes(
  app: Api,
  { access, accessData, inventory, machines, sensorHistory }: MachineRouteServices,
): Promise<void> {
  const onHost = [{ param: 'id', kind: 'host' }] as const;
  const shown = (view: MachineView) => ({ ...view, machine: objectView(view.machine) });

  serve(app, getMachine, { scope: [...onHost] }, async (request) =>
    shown(machines.view(request.params.id)),
  );

  serve(app, machineSensors, { scope: [...onHost] }, async (request) =>
    machines.sensors(request.params.id),
  );

  serve(app, machineSensorHistory, { scope: [...onHost] }, async (request) => {
    const machine = machines.machineOf(request.params.id);
    const { from, to, step } = request.query;
    return sensorHistory.history(machine.id, { from, to, stepSeconds: step ?? 60 });
  });

  serve(app, machineEnergy, { scope: [...onHost] }, async (request) => {
    const machine = machines.machineOf(request.params.id);
    const { from, to } = request.query;
    return {
      machineId: machine.id,
      from,
      to,
      ...(await sensorHistory.energy(machine.id, from, to)),
    };
  });

  serve(app, powerMachine, { audit: false, scope: [...onHost] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      machines.requestPower(request.params.id, request.body.action, actor, requestId),
    ),
  );

  serve(app, bootMachineOnce, { audit: false, scope: [...onHost] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      machines.requestBoot(request.params.id, request.body.device, actor, requestId),
    ),
  );

  serve(app, insertMachineMedia, { audit: false, scope: [...onHost] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      machines.requestMedia(request.params.id, request.body.image, actor, requestId),
    ),
  );

  serve(app, ejectMachineMedia, { audit: false, scope: [...onHost] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      machines.requestMedia(request.params.id, null, actor, requestId),
    ),
  );

  serve(app, identifyMachine, { audit: false, scope: [...onHost] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      machines.requestIdentify(request.params.id, request.body.on, actor, requestId),
    ),
  );

  serve(app, fenceMachine, { audit: false, scope: [...onHost] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      machines.requestFence(request.params.id, actor, requestId),
    ),
  );

  serve(
    app,
    linkMachine,
    { audit: 'host.link', scope: [...onHost, { body: 'hostId', kind: 'host' }] },
    async (request) => {
      // The machine's facts land on the host: access data when a condition reads them.
      const principal = principalOf(request);
      accessData.checkLink(principal, [
        machines.machineOf(request.params.id).id,
        inventory.resolve('host', request.body.hostId).id,
      ]);
      return shown(await machines.link(request.params.id, request.body.hostId, actorOf(principal)));
    },
  );

  serve(app, unlinkMachine, { audit: 'host.unlink', scope: [...onHost] }, async (request) => {
    // Unlinking changes both hosts: it needs host.link on the machine and on its host.
    const principal = principalOf(request);
    const current = machines.view(request.params.id);
    for (const id of [current.machine.id, current.hostId])
      if (id && !access.decide(principal, 'host.link', id).allowed)
        throw new ZenithError(
          'ZEN_FORBIDDEN',
          `${principal.name} may not host.link: the machine and the host it is linked to both need it`,
          { permission: 'host.link', role: principal.role },
        );
    accessData.checkLink(principal, [current.machine.id, current.hostId]);
    return shown(await machines.unlink(request.params.id, actorOf(principal)));
  });
}
