/**
 * Authentication and authorization for every route. A route must declare
 * either `config.public` or the `config.permission` it needs; the server
 * refuses to start with a route that declares neither.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { ZenithError } from '../core/errors.js';
import { assertId } from '../core/ids.js';
import type { ObjectKind } from '../hypervisors/driver.js';
import type { ManagedObject } from '../services/inventory/model.js';
import type { Actor } from '../services/audit/audit-service.js';
import type { OperationSpec } from '../api/operation.js';
import type { ControlPlane } from '../app/control-plane.js';
import type { Permission, Principal } from '../services/identity/roles.js';

/**
 * Where a route's permission is checked. `global`: a binding on everything
 * is needed. `filtered`: any binding of the permission lets the caller in and
 * the answer holds only what its scopes reach. A list of sources: the objects
 * the request names (a path parameter, a body field or every item of a body
 * field that lists them), each checked on its scope chain; a task stands for
 * the object it acts on, a backup for the VM it is of, a backup job for its scope, and an image
 * (of the library) for the host it lies on.
 */
export type RouteScope =
  | 'global'
  | 'filtered'
  | Array<
      | { param: string; kind: ObjectKind | 'task' | 'backup' | 'backupJob' | 'image' | 'any' }
      | { body: string; kind: ObjectKind | 'any' }
    >;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Reachable without credentials (health, login, the API document). */
    public?: boolean;
    /** The permission the caller's role must grant; 'self' = any authenticated identity. */
    permission?: Permission | 'self';
    /** Where the permission is checked; global when absent. */
    scope?: RouteScope;
    /** The audit action name for a mutating route; false when the route audits itself (tasks). */
    audit?: string | false;
    /** The operation of the contract (src/api) the route serves; absent on hidden routes only. */
    operation?: OperationSpec;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** Every API route with what it needs: the source of the permission matrix test and of docs. */
    routeTable: RouteEntry[];
  }
  interface FastifyReply {
    /** The code of the error this reply carries, for the audit record. */
    zenithErrorCode: string | null;
  }
}

export interface RouteEntry {
  method: string;
  url: string;
  public: boolean;
  permission: Permission | 'self' | null;
  scope: RouteScope;
  /** The contract's operation it serves (null for the hidden ones: the document, WebSockets). */
  operation: OperationSpec | null;
}

export const sessionCookie = 'zenith_session';

export function actorOf(principal: Principal): Actor {
  return { id: principal.id, kind: principal.kind, name: principal.name };
}

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new ZenithError('ZEN_UNAUTHENTICATED', 'authentication required');
  return request.principal;
}

/** The methods a session cookie authenticates: reads, which change nothing. */
const cookieMethods = new Set(['GET', 'HEAD']);

function presentedToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header) {
    const [scheme, value] = header.split(' ', 2);
    if (scheme?.toLowerCase() !== 'bearer' || !value)
      throw new ZenithError('ZEN_UNAUTHENTICATED', "use 'Authorization: Bearer <token>'");
    return value.trim();
  }
  const cookie = request.headers.cookie;
  if (cookie) {
    for (const part of cookie.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name !== sessionCookie) continue;
      // A browser sends the cookie with requests other sites make it send (a form posted from a
      // sibling subdomain is same-site): the cookie reads (the event stream), it never changes anything.
      if (!cookieMethods.has(request.method))
        throw new ZenithError(
          'ZEN_UNAUTHENTICATED',
          `the session cookie authenticates reads only; a ${request.method} needs 'Authorization: Bearer <token>'`,
        );
      try {
        return decodeURIComponent(rest.join('='));
      } catch {
        throw new ZenithError('ZEN_UNAUTHENTICATED', 'the session cookie is malformed');
      }
    }
  }
  return undefined;
}

/** Reading an inventory object takes inventory.read on it (a task's reading is decided in scopeObjects). */
function mayRead(plane: ControlPlane, principal: Principal, objectId: string): boolean {
  return plane.access.decide(principal, 'inventory.read', objectId).allowed;
}

/**
 * The objects a request names (their ids), each resolved among those the caller may see: the ones
 * it may read, or act on with the permission asked. One it may not see answers exactly as one that
 * does not exist (404), so that a refusal never tells which objects exist. A name is replaced by
 * the id it resolved to, so the route acts on the object that was checked. A task (read with
 * task.read on its target, or by its owner) stands for its target, except when its owner reads it:
 * a submitter may read their own task wherever its target now is, as the task list shows it.
 * The answer lists the objects to check the permission on; null stands for everything.
 */
async function scopeObjects(
  request: FastifyRequest,
  principal: Principal,
  needed: Permission,
  scope: Exclude<RouteScope, 'global' | 'filtered'>,
  plane: ControlPlane,
): Promise<{ named: Array<string | null>; settled: string[] }> {
  const named: Array<string | null> = [];
  /** Tasks their owner reads: allowed as they are. */
  const settled: string[] = [];
  const params = (request.params ?? {}) as Record<string, unknown>;
  const body = (request.body ?? {}) as Record<string, unknown>;
  const visible = (object: ManagedObject) =>
    mayRead(plane, principal, object.id) ||
    plane.access.decide(principal, needed, object.id).allowed;
  const resolve = (kind: ObjectKind | 'any', value: string) =>
    kind === 'any'
      ? plane.inventory.lookup(value, visible)
      : plane.inventory.resolve(kind, value, visible);
  /**
   * An object that stands for what the caller names (a backup's VM, a job's scope; null:
   * everything) is checked in its place: unseen, what was named does not exist.
   */
  const standIn = (objectId: string | null, read: Permission, what: string, id: string) => {
    const readable = plane.access.decide(principal, read, objectId).allowed;
    if (!readable && !plane.access.decide(principal, needed, objectId).allowed)
      throw new ZenithError('ZEN_NOT_FOUND', `no ${what} ${id}`, { id });
    named.push(objectId);
  };
  for (const source of scope) {
    const value = 'param' in source ? params[source.param] : body[source.body];
    // A body field listing objects: each is checked, and replaced by its id.
    if ('body' in source && Array.isArray(value)) {
      const ids = value.map((item: unknown) =>
        typeof item === 'string' && item !== '' ? resolve(source.kind, item).id : item,
      );
      body[source.body] = ids;
      for (const id of ids) if (typeof id === 'string') named.push(id);
      continue;
    }
    // A missing or mistyped body field is left to schema validation (a 400).
    if (typeof value !== 'string' || value === '') continue;
    if (source.kind === 'task') {
      const task = await plane.tasks.get(assertId(value, 'task'));
      const own = task.ownerId === principal.id;
      if (own && needed === 'task.read') {
        settled.push(task.id);
        continue;
      }
      const readable = own || plane.access.decide(principal, 'task.read', task.targetId).allowed;
      const allowed = plane.access.decide(principal, needed, task.targetId).allowed;
      // The same answer as tasks.get gives for a task that does not exist.
      if (!readable && !allowed)
        throw new ZenithError('ZEN_NOT_FOUND', `no task ${value}`, { id: value });
      // A task on no object is checked on everything.
      named.push(task.targetId);
      continue;
    }
    if (source.kind === 'backup') {
      // A backup is the VM's data: reached as its VM is (the catalogue, not the caller, says which).
      const backup = await plane.backups.get(value);
      standIn(backup.vmId, 'backup.read', 'backup', value);
      continue;
    }
    if (source.kind === 'image') {
      // An image is read as the host it lies on is: unseen, it does not exist.
      const hostId = await plane.images.hostOf(assertId(value, 'image'));
      standIn(hostId, 'inventory.read', 'image', value);
      continue;
    }
    if (source.kind === 'backupJob') {
      // A job stands for its scope (null: everything); unseen, it does not exist.
      const job = await plane.backupJobs.scopeOf(value);
      standIn(job.scopeId, 'backup.read', 'backup job', value);
      params[(source as { param: string }).param] = job.id;
      continue;
    }
    const object = resolve(source.kind, value);
    if ('param' in source) params[source.param] = object.id;
    else body[source.body] = object.id;
    named.push(object.id);
  }
  return { named, settled };
}

function forbidden(principal: Principal, permission: Permission, reason: string): ZenithError {
  return new ZenithError('ZEN_FORBIDDEN', `${principal.name} may not ${permission}: ${reason}`, {
    permission,
    role: principal.role,
  });
}

export function installAuth(app: FastifyInstance, plane: ControlPlane): void {
  const { sessions, access } = plane;
  app.decorateRequest('principal', null);
  app.decorateReply('zenithErrorCode', null);
  const routeTable: RouteEntry[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route: RouteOptions) => {
    const config = route.config as
      | {
          public?: boolean;
          permission?: Permission | 'self';
          scope?: RouteScope;
          operation?: OperationSpec;
        }
      | undefined;
    if (!route.url.startsWith('/api/')) return;
    if (!config?.public && !config?.permission) {
      throw new Error(
        `route ${route.method.toString()} ${route.url} declares neither public nor a permission`,
      );
    }
    // Every route in the document serves an operation of the contract: shapes are declared there once.
    const hidden = (route.schema as { hide?: boolean } | undefined)?.hide === true;
    if (!hidden && !config.operation)
      throw new Error(
        `route ${route.method.toString()} ${route.url} serves no operation of the contract (src/api)`,
      );
    for (const method of [route.method].flat())
      routeTable.push({
        method,
        url: route.url,
        public: config.public === true,
        permission: config.permission ?? null,
        scope: config.scope ?? 'global',
        operation: config.operation ?? null,
      });
  });
  // onRequest: before the body is parsed or validated, so an anonymous caller learns nothing.
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    if (config.public || !request.routeOptions.url) return;
    const token = presentedToken(request);
    if (!token)
      throw new ZenithError(
        'ZEN_UNAUTHENTICATED',
        'authentication required: log in (zenith login) or send an API token',
      );
    request.principal = await sessions.authenticate(token);
    const needed = config.permission;
    if (!needed || needed === 'self') return;
    // The cheap gate: without the permission anywhere, nothing of the request is even parsed.
    if (!access.holdsAnywhere(request.principal, needed))
      throw forbidden(request.principal, needed, `no role binding grants ${needed} anywhere`);
  });
  // preValidation: the body is parsed but not validated yet, so a scope is checked before the input is judged.
  app.addHook('preValidation', async (request) => {
    const config = request.routeOptions.config;
    const needed = config.permission;
    const principal = request.principal;
    if (!principal || !needed || needed === 'self' || config.scope === 'filtered') return;
    const scope = config.scope ?? 'global';
    const { named: objects, settled } =
      scope === 'global'
        ? { named: [], settled: [] }
        : await scopeObjects(request, principal, needed, scope, plane);
    if (objects.length === 0 && settled.length === 0) {
      const decision = access.decide(principal, needed, null);
      if (!decision.allowed) throw forbidden(principal, needed, decision.reason);
      return;
    }
    for (const id of objects) {
      const decision = access.decide(principal, needed, id);
      if (decision.allowed) continue;
      // The caller may read the object (scopeObjects answered 404 otherwise), so naming it tells
      // nothing new; the scopes of the caller's bindings stay out of the message.
      throw forbidden(
        principal,
        needed,
        id === null ? decision.reason : `no role binding grants it on ${id}`,
      );
    }
  });
}
