/** Groups, roles, role bindings and the explanation of a decision. */
import {
  addGroupMember,
  createBinding,
  createGroup,
  createRole,
  deleteBinding,
  deleteGroup,
  deleteRole,
  explainAccess,
  getGroup,
  getRole,
  listBindings,
  listGroups,
  listRoles,
  removeGroupMember,
  updateRole,
} from '../../api/access.js';
import { assertId } from '../../core/ids.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';

export interface AccessRouteServices {
  access: AccessService;
  inventory: InventoryService;
}

export async function accessRoutes(
  app: Api,
  { access, inventory }: AccessRouteServices,
): Promise<void> {
  serve(app, listGroups, {}, async () => ({ items: await access.listGroups() }));
  serve(app, createGroup, { audit: 'group.create' }, async (request, reply) =>
    reply.status(201).send(await access.createGroup(request.body)),
  );
  serve(app, getGroup, {}, async (request) => access.getGroup(request.params.id));
  serve(app, deleteGroup, { audit: 'group.delete' }, async (request) =>
    access.deleteGroup(request.params.id),
  );
  serve(app, addGroupMember, { audit: 'group.addMember' }, async (request) =>
    access.addMember(request.params.id, request.body.member),
  );
  serve(app, removeGroupMember, { audit: 'group.removeMember' }, async (request) =>
    access.removeMember(request.params.id, request.params.member),
  );

  serve(app, listRoles, {}, async () => ({ items: await access.listRoles() }));
  serve(app, createRole, { audit: 'role.create' }, async (request, reply) =>
    reply.status(201).send(await access.createRole(request.body)),
  );
  serve(app, getRole, {}, async (request) => access.getRole(request.params.id));
  serve(app, updateRole, { audit: 'role.update' }, async (request) =>
    access.updateRole(request.params.id, request.body),
  );
  serve(app, deleteRole, { audit: 'role.delete' }, async (request) =>
    access.deleteRole(request.params.id),
  );

  serve(app, listBindings, {}, async (request) => {
    const q = request.query;
    const subjectId = q.subject ? (await access.resolveSubject(q.subject)).id : undefined;
    const scopeId = q.scope ? inventory.lookup(q.scope).id : undefined;
    return {
      items: await access.listBindings({
        ...(subjectId ? { subjectId } : {}),
        ...(scopeId ? { scopeId } : {}),
      }),
    };
  });
  serve(app, createBinding, { audit: 'roleBinding.create' }, async (request, reply) =>
    reply.status(201).send(await access.createBinding(request.body, principalOf(request).id)),
  );
  serve(app, deleteBinding, { audit: 'roleBinding.delete' }, async (request) =>
    access.deleteBinding(assertId(request.params.id, 'binding')),
  );

  serve(app, explainAccess, {}, async (request) =>
    access.explain(request.query.identity, request.query.permission, request.query.object ?? null),
  );
}
