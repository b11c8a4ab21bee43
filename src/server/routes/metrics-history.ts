import { vmMetricsHistory } from '../../api/metrics.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import type { MetricHistory } from '../../services/metrics/metric-history.js';
import { serve, type Api } from '../route.js';

export interface MetricsHistoryRouteServices {
  inventory: InventoryService;
  metrics: MetricHistory;
}

/** Metrics of a VM over time, as chart points (the web console draws them). */
export async function metricsHistoryRoutes(
  app: Api,
  { inventory, metrics }: MetricsHistoryRouteServices,
): Promise<void> {
  serve(app, vmMetricsHistory, { scope: [{ param: 'id', kind: 'vm' }] }, async (request) => {
    const vm = inventory.resolve('vm', request.params.id);
    const { from, to, step } = request.query;
    return metrics.history(vm.id, { from, to, stepSeconds: step ?? 60 });
  });
}
