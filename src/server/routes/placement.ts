import {
  applyPlan,
  discardPlan,
  evacuateHost,
  exitMaintenance,
  runPowerManagement,
  getPlan,
  listPlans,
  planMoves,
  previewPlacement,
  rebalance,
} from '../../api/placement.js';
import type { Requester } from '../../services/policy/fact-sources.js';
import type { EvacuationService } from '../../services/plans/evacuation-service.js';
import type { PowerManager } from '../../services/plans/power-management.js';
import type { PlacementService } from '../../services/placement/placement-service.js';
import type { PlanService } from '../../services/plans/plan-service.js';
import type { Principal } from '../../services/identity/roles.js';
import { actorOf, principalOf } from '../auth.js';
import { acceptTask } from '../task-reply.js';
import { serve, type Api } from '../route.js';

export function requesterOf(principal: Principal): Requester {
  return { id: principal.id, name: principal.name, kind: principal.kind, role: principal.role };
}

export interface PlacementRouteServices {
  placement: PlacementService;
  plans: PlanService;
  evacuations: EvacuationService;
  powerManagement: PowerManager;
}

export async function placementRoutes(
  app: Api,
  { placement, plans, evacuations, powerManagement }: PlacementRouteServices,
): Promise<void> {
  serve(app, previewPlacement, { audit: false }, async (request) => {
    const { vm, topCandidates } = request.body;
    const draft =
      typeof vm === 'string'
        ? vm
        : (JSON.parse(JSON.stringify({ name: 'new-vm', diskBytes: 0, ...vm })) as {
            name: string;
            cpus: number;
            memoryBytes: number;
          });
    return placement.preview(
      { vm: draft, explain: true, ...(topCandidates ? { topCandidates } : {}) },
      requesterOf(principalOf(request)),
    );
  });

  serve(app, rebalance, { audit: 'placement.rebalance' }, async (request, reply) => {
    const body = request.body;
    const { plan, task } = await plans.rebalance(
      {
        mode: body.mode ?? 'balance',
        maxMoves: body.maxMoves ?? 20,
        minBenefit: body.minBenefit ?? 0.05,
        apply: body.apply ?? 'recommend',
        ...(body.scope ? { scope: body.scope } : {}),
        ...(body.consolidateBelow !== undefined ? { consolidateBelow: body.consolidateBelow } : {}),
        ...(body.targetLoad !== undefined ? { targetLoad: body.targetLoad } : {}),
        ...(body.wakeStandby ? { wakeStandby: true } : {}),
      },
      actorOf(principalOf(request)),
    );
    return reply.status(201).send({ plan, task });
  });

  serve(app, planMoves, { audit: 'placement.plan' }, async (request, reply) =>
    reply
      .status(201)
      .send(await plans.planMoves(request.body.moves, actorOf(principalOf(request)))),
  );

  serve(app, listPlans, {}, async (request) => ({
    items: await plans.plans.list({
      limit: request.query.limit ?? 50,
      ...(request.query.kind ? { kind: request.query.kind } : {}),
      ...(request.query.state ? { state: request.query.state } : {}),
    }),
  }));

  serve(app, getPlan, {}, async (request) => plans.plans.get(request.params.id));

  serve(app, applyPlan, { audit: false }, async (request, reply) =>
    reply.status(202).send(await plans.apply(request.params.id, actorOf(principalOf(request)))),
  );

  serve(app, discardPlan, { audit: 'placement.discard' }, async (request) =>
    plans.discard(request.params.id),
  );

  serve(app, evacuateHost, { audit: false }, async (request, reply) => {
    const { task } = await evacuations.evacuate(request.params.id, actorOf(principalOf(request)));
    return reply.status(202).send(task);
  });

  serve(app, runPowerManagement, { audit: false }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      powerManagement.request(request.body.scope, actor, requestId),
    ),
  );

  serve(app, exitMaintenance, { audit: 'host.exitMaintenance' }, async (request) =>
    evacuations.exitMaintenance(request.params.id, actorOf(principalOf(request))),
  );
}
