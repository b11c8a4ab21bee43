/**
 * Explicit members of a resource group: objects listed by id besides the group's children and
 * whatever its selector picks, so that one VM or host can sit in several resource groups.
 * Membership widens what bindings on the group reach, so changing it is an access change:
 * `identity.manage` on the group, and on the member (an object the caller cannot read is not found).
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import type { ControlPlane } from '../../app/control-plane.js';
import { maxMembers } from '../../services/identity/access-data-guard.js';
import { membersFact, membersOf } from '../../services/inventory/scope-chain.js';
import { principalOf } from '../auth.js';
import { ManagedObjectView } from '../schemas.js';
import { objectView } from './inventory.js';

export async function resourceGroupMemberRoutes(
  root: FastifyInstance,
  plane: ControlPlane,
): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { inventory } = plane;

  /** The member as the caller may see it: an object they cannot read is "not found". */
  const readableMember = (request: Parameters<typeof principalOf>[0], idOrName: string) => {
    const member = inventory.lookup(idOrName);
    if (!plane.access.decide(principalOf(request), 'inventory.read', member.id).allowed)
      throw new ZenithError('ZEN_NOT_FOUND', `no object '${idOrName}'`, { id: idOrName });
    return member;
  };

  app.post(
    '/resource-groups/:id/members',
    {
      config: {
        permission: 'identity.manage',
        audit: 'resourceGroup.addMember',
        scope: [{ param: 'id', kind: 'resourceGroup' }],
      },
      schema: {
        tags: ['inventory'],
        summary:
          'List an object (VM, host, cluster, …) as a member of the resource group; bindings on the group then reach it',
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) }),
        body: Type.Object(
          { object: Type.String({ minLength: 1, maxLength: 200 }) },
          { additionalProperties: false },
        ),
        response: { 200: ManagedObjectView },
      },
    },
    async (request) => {
      const group = inventory.resolve('resourceGroup', request.params.id);
      const member = readableMember(request, request.body.object);
      // Bindings on the group would reach the member: the caller must manage access to it already.
      plane.accessData.checkNewMember(principalOf(request), member);
      if (member.id === group.id)
        throw new ZenithError('ZEN_CONFLICT', `${group.name} cannot be a member of itself`, {
          id: group.id,
        });
      const updated = await inventory.setUserFacts(
        group.id,
        (current) => {
          const members = membersOf(current);
          if (members.includes(member.id)) return {};
          if (members.length >= maxMembers)
            throw new ZenithError(
              'ZEN_CONFLICT',
              `${group.name} already lists ${maxMembers} members: use a selector (user.selector) for larger sets`,
              { limit: maxMembers },
            );
          return { [membersFact]: [...members, member.id] };
        },
        {},
      );
      return objectView(updated);
    },
  );

  app.delete(
    '/resource-groups/:id/members/:member',
    {
      config: {
        permission: 'identity.manage',
        audit: 'resourceGroup.removeMember',
        scope: [{ param: 'id', kind: 'resourceGroup' }],
      },
      schema: {
        tags: ['inventory'],
        summary: 'Take an object off the resource group’s member list',
        params: Type.Object({
          id: Type.String({ minLength: 1, maxLength: 200 }),
          member: Type.String({ minLength: 1, maxLength: 200 }),
        }),
        response: { 200: ManagedObjectView },
      },
    },
    async (request) => {
      const group = inventory.resolve('resourceGroup', request.params.id);
      // A member deleted from the inventory meanwhile can still be taken off by its id.
      const listed = membersOf(group);
      const memberId = listed.includes(request.params.member)
        ? request.params.member
        : readableMember(request, request.params.member).id;
      if (!listed.includes(memberId))
        throw new ZenithError(
          'ZEN_NOT_FOUND',
          `${request.params.member} is not a member of ${group.name}`,
          {
            id: request.params.member,
          },
        );
      const updated = await inventory.setUserFacts(
        group.id,
        (current) => {
          const members = membersOf(current).filter((id) => id !== memberId);
          return { [membersFact]: members.length > 0 ? members : null };
        },
        {},
      );
      return objectView(updated);
    },
  );
}
