/** Whether the server is up (no credentials needed). */
import { Type } from 'typebox';
import { operation } from './operation.js';

export const health = operation({
  method: 'GET',
  path: '/health',
  auth: 'public',
  tag: 'system',
  summary: 'Liveness and store reachability (no authentication)',
  success: {
    200: Type.Object({ status: Type.String(), version: Type.String(), store: Type.String() }),
  },
});
