/** Quotas per group: limits, and what is used, reserved and available under them. */
import { Type, type Static } from 'typebox';
import { IdParams, Items } from './common.js';
import { operation } from './operation.js';

// Null first: the server coerces types, and tried as an integer first, null would become 0.
const Limit = Type.Union([Type.Null(), Type.Integer({ minimum: 0 })]);
const Amounts = Type.Object({
  vcpus: Type.Number(),
  memoryBytes: Type.Number(),
  diskBytes: Type.Number(),
  vms: Type.Number(),
});
const Limits = Type.Object({ vcpus: Limit, memoryBytes: Limit, diskBytes: Limit, vms: Limit });

export const QuotaView = Type.Object({
  groupId: Type.String(),
  groupName: Type.String(),
  /** null: no limit. */
  limits: Limits,
  /** What the present VMs of the group and its nested groups take. */
  used: Amounts,
  /** What queued and running tasks of those groups hold. */
  reserved: Amounts,
  /** limit − used − reserved (never below 0); null where there is no limit. */
  available: Limits,
  /** The groups whose VMs count here: the group and every group nested in it. */
  covers: Type.Array(Type.String()),
  updatedBy: Type.String(),
  updatedAt: Type.Number(),
});
export type QuotaView = Static<typeof QuotaView>;

export const listQuotas = operation({
  method: 'GET',
  path: '/quotas',
  auth: 'identity.manage',
  tag: 'quotas',
  summary: 'Every group quota with its usage',
  success: { 200: Items(QuotaView) },
});

export const getQuota = operation({
  method: 'GET',
  path: '/groups/:id/quota',
  // Members of the group (however deep) read their own usage; so do those who manage identities.
  auth: 'self',
  tag: 'quotas',
  summary:
    "A group's quota: limits, used (its present VMs and its nested groups'), reserved (tasks under way) and available",
  params: IdParams,
  success: { 200: QuotaView },
});

export const setQuota = operation({
  method: 'PUT',
  path: '/groups/:id/quota',
  auth: 'identity.manage',
  tag: 'quotas',
  summary:
    "Set a group's limits (the ones given; null: no limit). A request must fit the quota of its group and of every group above it",
  params: IdParams,
  body: Type.Object(
    {
      vcpus: Type.Optional(Limit),
      memoryBytes: Type.Optional(Limit),
      diskBytes: Type.Optional(Limit),
      vms: Type.Optional(Limit),
    },
    { additionalProperties: false },
  ),
  success: { 200: QuotaView },
});

export const clearQuota = operation({
  method: 'DELETE',
  path: '/groups/:id/quota',
  auth: 'identity.manage',
  tag: 'quotas',
  summary: "Remove a group's quota",
  params: IdParams,
  success: { 200: QuotaView },
});
