/** Consoles of VMs: a single-use ticket, then a WebSocket at the path it names (outside this document). */
import { Type, type Static } from 'typebox';
import { IdOrName } from './common.js';
import { operation } from './operation.js';

export const ConsoleTicket = Type.Object({
  ticket: Type.String(),
  /** Where to open the WebSocket (under /api/v1): the console's bytes both ways, in binary frames. */
  path: Type.String(),
  expiresAt: Type.Number(),
});
export type ConsoleTicket = Static<typeof ConsoleTicket>;

export const consoleKinds = ['serial', 'vnc'] as const;
export type ConsoleKind = (typeof consoleKinds)[number];

export const createConsoleTicket = operation({
  method: 'POST',
  path: '/vms/:id/console-tickets',
  auth: 'vm.console',
  tag: 'consoles',
  summary:
    "A single-use ticket (30 s) for the VM's serial or VNC console; open a WebSocket on the path it names",
  params: Type.Object({ id: IdOrName }, { additionalProperties: false }),
  body: Type.Object(
    { kind: Type.Optional(Type.Union([Type.Literal('serial'), Type.Literal('vnc')])) },
    { additionalProperties: false },
  ),
  success: { 201: ConsoleTicket },
  errors: [409, 422],
});
