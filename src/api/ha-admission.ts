/**
 * High availability's what-if report: if these hosts failed now, where each protected VM running
 * on them would run again, and which could not (docs/high-availability.md, "Admission control and
 * what-if"). Admission control itself has no operation: it refuses creations, starts and moves
 * with ZEN_HA_ADMISSION.
 */
import { Type, type Static } from 'typebox';
import { IdOrName } from './common.js';
import { operation } from './operation.js';

const NullableString = Type.Union([Type.String(), Type.Null()]);

export const WhatIfRestartView = Type.Object({
  /** Null for a VM the caller may not read (it still takes its room). */
  vmId: NullableString,
  vmName: NullableString,
  fromHostId: Type.String(),
  fromHostName: Type.String(),
  /** highest … lowest. */
  priority: Type.String(),
  restartOrder: Type.Number(),
  /** Where it would run again; null when no host could take it, or the caller may not read it. */
  toHostId: NullableString,
  toHostName: NullableString,
  restarts: Type.Boolean(),
  /** Why it could not restart (placement's reasons), else null. */
  reason: NullableString,
  /** How many hosts each placement check rejected, when it could not restart. */
  rejectedByReason: Type.Record(Type.String(), Type.Number()),
});
export type WhatIfRestartView = Static<typeof WhatIfRestartView>;

export const WhatIfReport = Type.Object({
  failedHosts: Type.Array(
    Type.Object({
      id: Type.String(),
      name: Type.String(),
      /** hostFailuresToTolerate in force there (0: admission control is off there). */
      hostFailuresToTolerate: Type.Number(),
    }),
  ),
  /** In the order a failover would place them: order group, then priority, then name. */
  restarts: Type.Array(WhatIfRestartView),
  restarted: Type.Number(),
  unrecoverable: Type.Number(),
});
export type WhatIfReport = Static<typeof WhatIfReport>;

export const haWhatIf = operation({
  method: 'POST',
  path: '/ha/what-if',
  auth: 'inventory.read',
  tag: 'ha',
  summary:
    'If these hosts failed now: where each protected VM running on them would run again (placed as a failover places it, in restart order, each taking its room), and which could not, with placement’s reasons. Changes nothing.',
  body: Type.Object(
    { hosts: Type.Array(IdOrName, { minItems: 1, maxItems: 100 }) },
    { additionalProperties: false },
  ),
  success: { 200: WhatIfReport },
  errors: [404, 409],
});
