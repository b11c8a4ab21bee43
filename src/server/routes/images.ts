/**
 * The image library's routes: an image is read as its host is, a list holds the images of the
 * hosts the caller may read, and a scan is a task on the host.
 */
import { getImage, listImages, scanHostImages } from '../../api/images.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { ImageLibrary } from '../../services/images/image-library.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';
import { acceptTask } from '../task-reply.js';

export interface ImageRouteServices {
  inventory: InventoryService;
  access: AccessService;
  images: ImageLibrary;
}

export async function imageRoutes(
  app: Api,
  { inventory, access, images }: ImageRouteServices,
): Promise<void> {
  serve(app, listImages, { scope: 'filtered' }, async (request) => {
    const readable = access.filter(principalOf(request), 'inventory.read');
    const { host, kind, format, orphaned, status, cursor, limit } = request.query;
    const hostId = host ? inventory.resolve('host', host, (o) => readable(o.id)).id : undefined;
    const page = await images.list({
      ...(hostId ? { hostId } : {}),
      ...(kind ? { kind } : {}),
      ...(format ? { format } : {}),
      ...(orphaned !== undefined ? { orphaned } : {}),
      ...(status ? { status } : {}),
      ...(cursor ? { after: cursor } : {}),
      visibleHost: readable,
      limit: limit ?? 100,
    });
    return { items: page.items, nextCursor: page.next };
  });
  serve(app, getImage, { scope: [{ param: 'id', kind: 'image' }] }, async (request) =>
    images.get(request.params.id),
  );
  serve(
    app,
    scanHostImages,
    { audit: false, scope: [{ param: 'id', kind: 'host' }] },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        images.scan(request.params.id, actor, requestId),
      ),
  );
}
