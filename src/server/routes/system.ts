import { health } from '../../api/system.js';
import type { Store } from '../../store/store.js';
import { serve, type Api } from '../route.js';

export interface SystemRouteServices {
  store: Pick<Store, 'dialect'>;
}

export async function systemRoutes(app: Api, { store }: SystemRouteServices): Promise<void> {
  serve(app, health, {}, async () => ({ status: 'ok', version: '0.1.0', store: store.dialect }));
  // The document itself: generated from the routes, not an operation of its own.
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
}
