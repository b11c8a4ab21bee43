/**
 * Creating a VM, as a task. Without a host, placement chooses one by policy
 * (or the request is refused with ZEN_NO_PLACEMENT and every host's reason).
 * Where high availability's admission control is on, a VM whose host could
 * not be recovered from is refused (ZEN_HA_ADMISSION).
 * The spec is checked before anything is queued: sane sizes, a present host
 * whose connection can create VMs, room for the memory, and a name not
 * already used on that connection. Tags and user facts given with the
 * request are set on the new VM, so policies see it as they saw the request.
 */
import { Type, type Static } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import type { Actor } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import { tagPattern, userFactKey, type Facts, type ManagedObject } from '../inventory/model.js';
import { quotaHoldParams, type QuotaGate } from '../quotas/quota-gate.js';
import type { OwningGroup } from '../quotas/quota-service.js';
import type { Task, TaskKind, TaskRunContext, TaskService } from '../tasks/task-service.js';

export interface VmCreateRequest {
  name: string;
  /** Where to create it; placement chooses when absent. */
  hostId?: string;
  /** The hypervisor type it needs (placement only considers hosts that run it). */
  type?: string;
  tags?: string[];
  /** user.* facts to set on the new VM (user.resourceGroup puts it in a group). */
  facts?: Facts;
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  /** Family-specific settings passed to the driver (QEMU: kernel, initrd, cmdline, baseImage, nics, vnc, accelerator). */
  options?: Record<string, unknown>;
  /** The group the VM belongs to (and whose quotas it counts against); default: the creator's only group. */
  group?: string;
}

/** The stored parameters of a creation task: the request (its group resolved) and where it goes. */
const CreateParams = Type.Object({
  name: Type.String(),
  hostId: Type.String(),
  type: Type.Optional(Type.String()),
  tags: Type.Optional(Type.Array(Type.String())),
  facts: Type.Optional(
    Type.Record(
      Type.String(),
      Type.Union([
        Type.String(),
        Type.Number(),
        Type.Boolean(),
        Type.Array(Type.String()),
        Type.Null(),
      ]),
    ),
  ),
  cpus: Type.Number(),
  memoryBytes: Type.Number(),
  diskBytes: Type.Number(),
  options: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  hostName: Type.Optional(Type.String()),
  /** The host was in standby when the VM was placed: the task powers it on first. */
  wakeHost: Type.Optional(Type.Boolean()),
  /** What the driver said the VM will take (what a quota reserves). */
  footprint: Type.Optional(
    Type.Object({ cpus: Type.Number(), memoryBytes: Type.Number(), diskBytes: Type.Number() }),
  ),
  placement: Type.Optional(
    Type.Object({ score: Type.Union([Type.Number(), Type.Null()]), feasibleHosts: Type.Number() }),
  ),
  ...quotaHoldParams,
});
type CreateParams = Static<typeof CreateParams>;

/** A VM to create, as placement sees it. */
export interface NewVmDraft {
  name: string;
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  type?: string;
  tags?: string[];
  facts?: Facts;
}

/** Chooses a host by policy (the placement service). */
export interface HostChooser {
  chooseHost(
    draft: NewVmDraft,
    requester: Actor,
  ): {
    hostId: string;
    decision: { chosen: { score: number } | null; feasibleHosts: number };
    /** Ends the hold placement keeps on the host while the VM is being created. */
    release: () => void;
    /** The host is in standby: power management powers it on before the VM is created there. */
    wakes?: boolean;
  };
  /** Powers a host in standby on and waits until it answers; absent: hosts are never woken. */
  wake?(hostId: string, signal: AbortSignal): Promise<void>;
  /**
   * Admission control for a VM on a host the request chose (chooseHost applies it itself):
   * throws the refusal. Absent: nothing is refused.
   */
  admitNew?(draft: NewVmDraft, hostId: string, requester: Actor): void;
}

function draftOf(spec: VmCreateRequest): NewVmDraft {
  return {
    name: spec.name,
    cpus: spec.cpus,
    memoryBytes: spec.memoryBytes,
    diskBytes: spec.diskBytes,
    ...(spec.type ? { type: spec.type } : {}),
    ...(spec.tags ? { tags: spec.tags } : {}),
    ...(spec.facts ? { facts: spec.facts } : {}),
  };
}

const vmName = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;
const MiB = 1024 * 1024;

export class VmCreateService {
  /** Placement holds on hosts, by creation task. */
  readonly #holds = new Map<string, () => void>();
  readonly #create: TaskKind<CreateParams>;

  constructor(
    private readonly inventory: InventoryService,
    private readonly connections: ConnectionService,
    private readonly tasks: TaskService,
    private readonly placement: HostChooser,
    private readonly quotas: QuotaGate,
  ) {
    this.#create = tasks.register({
      name: 'vm.create',
      params: CreateParams,
      run: async (context) => {
        try {
          return await this.quotas.holdWhile(context.task, () => this.#createVm(context));
        } finally {
          this.#holds.get(context.task.id)?.();
          this.#holds.delete(context.task.id);
        }
      },
      // Done if a VM of that name now sits on the connection; creating again is safe otherwise.
      recover: async (task) => {
        const vm = this.#existing(task.params);
        if (!vm) return 'retry';
        await this.quotas.settleRecovered(task, vm.id);
        return 'done';
      },
    });
  }

  async #createVm(context: TaskRunContext<CreateParams>): Promise<unknown> {
    const params = context.task.params;
    if (params.wakeHost && this.placement.wake) {
      context.progress({ percent: 5, message: `powering ${params.hostName ?? 'the host'} on` });
      await this.placement.wake(params.hostId, context.signal);
    }
    const host = this.inventory.get(params.hostId);
    const driver = this.connections.driver(host.connectionId!);
    const vm = await driver.createVm(
      {
        name: params.name,
        cpus: params.cpus,
        memoryBytes: params.memoryBytes,
        diskBytes: params.diskBytes,
        hostExternalId: host.externalId!,
        ...(params.options ? { options: params.options } : {}),
      },
      { signal: context.signal, progress: (update) => context.progress(update) },
    );
    await this.inventory.applyChanges(host.connectionId!, [vm]);
    const created = this.inventory.index.idForExternal(host.connectionId!, 'vm', vm.externalId);
    if (created && (params.tags?.length || Object.keys(params.facts ?? {}).length))
      await this.inventory.setUserFacts(created, params.facts ?? {}, {
        add: params.tags ?? [],
      });
    return { vmId: created ?? null, name: vm.name, hostId: host.id };
  }

  async request(spec: VmCreateRequest, owner: Actor, requestId?: string): Promise<Task> {
    if (!vmName.test(spec.name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${spec.name}' is not a valid VM name (letters, digits, . _ -, at most 63)`,
        { name: spec.name },
      );
    if (!Number.isInteger(spec.cpus) || spec.cpus < 1 || spec.cpus > 512)
      throw new ZenithError('ZEN_BAD_REQUEST', 'cpus must be a whole number from 1 to 512', {
        cpus: spec.cpus,
      });
    if (spec.memoryBytes < 16 * MiB)
      throw new ZenithError('ZEN_BAD_REQUEST', 'memoryBytes must be at least 16 MiB', {
        memoryBytes: spec.memoryBytes,
      });
    if (spec.diskBytes < 0)
      throw new ZenithError('ZEN_BAD_REQUEST', 'diskBytes cannot be negative');
    for (const tag of spec.tags ?? [])
      if (!tagPattern.test(tag))
        throw new ZenithError('ZEN_BAD_REQUEST', `'${tag}' is not a valid tag`, { tag });
    for (const key of Object.keys(spec.facts ?? {}))
      if (!userFactKey.test(key))
        throw new ZenithError(
          'ZEN_BAD_REQUEST',
          `'${key}' is not a user fact: facts given with a new VM are named user.<name>`,
          { key },
        );
    const group = await this.quotas.owningGroup(owner, spec.group);
    let placement: { score: number | null; feasibleHosts: number } | undefined;
    let release: (() => void) | undefined;
    let hostId = spec.hostId;
    if (hostId === undefined) {
      const chosen = this.placement.chooseHost(draftOf(spec), owner);
      hostId = chosen.hostId;
      release = chosen.release;
      placement = {
        score: chosen.decision.chosen?.score ?? null,
        feasibleHosts: chosen.decision.feasibleHosts,
      };
    }
    try {
      const task = await this.#submit(spec, hostId, placement, group, owner, requestId);
      if (release) this.#holds.set(task.id, release);
      return task;
    } catch (error) {
      release?.();
      throw error;
    }
  }

  async #submit(
    spec: VmCreateRequest,
    hostId: string,
    placement: { score: number | null; feasibleHosts: number } | undefined,
    group: OwningGroup | null,
    owner: Actor,
    requestId: string | undefined,
  ): Promise<Task> {
    const host = this.inventory.resolve('host', hostId);
    if (host.status !== 'present')
      throw new ZenithError('ZEN_INVALID_STATE', `host ${host.name} is missing`);
    // A host power management put in standby is powered on by the creation task, before it creates.
    const wakes = host.computed['host.mode'] === 'standby' && this.placement.wake !== undefined;
    if (host.computed['host.mode'] && !wakes)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `host ${host.name} is in maintenance (${String(host.computed['host.mode'])})`,
        { mode: host.computed['host.mode'] },
      );
    // Powered off, its driver does not answer: the request's own figures are what it takes.
    const driver = wakes ? undefined : this.connections.driver(host.connectionId!);
    if (driver && !driver.info.capabilities.includes('vm.create'))
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${driver.info.type} connections cannot create VMs`,
        { capability: 'vm.create' },
      );
    const total = host.facts['memory.totalBytes'];
    if (typeof total === 'number' && spec.memoryBytes > total) {
      throw new ZenithError(
        'ZEN_NO_CAPACITY',
        `host ${host.name} has ${total} bytes of memory in all; the VM asks for ${spec.memoryBytes}`,
        { hostMemoryBytes: total },
      );
    }
    if (spec.type && host.facts['hypervisor.type'] !== spec.type)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `host ${host.name} runs ${String(host.facts['hypervisor.type'])}, not ${spec.type}`,
        { type: spec.type },
      );
    const { group: _named, ...rest } = spec;
    const normalized: CreateParams = {
      ...rest,
      hostId: host.id,
      ...(group ? { group, ownerName: owner.name } : {}),
    };
    if (this.#existing(normalized))
      throw new ZenithError('ZEN_CONFLICT', `a VM named '${spec.name}' exists on this connection`, {
        name: spec.name,
      });
    // On a host the request chose; one placement chose was admitted as it was chosen.
    if (!placement) this.placement.admitNew?.(draftOf(spec), host.id, owner);
    // What the VM will really take, as the driver will make it (family options may size its
    // disks): checked before anything is queued, and what a quota reserves.
    const footprint = driver?.checkNewVm
      ? await driver.checkNewVm({
          name: spec.name,
          cpus: spec.cpus,
          memoryBytes: spec.memoryBytes,
          diskBytes: spec.diskBytes,
          hostExternalId: host.externalId!,
          ...(spec.options ? { options: spec.options } : {}),
        })
      : { cpus: spec.cpus, memoryBytes: spec.memoryBytes, diskBytes: spec.diskBytes };
    return this.tasks.submit({
      kind: this.#create,
      targetId: host.id,
      params: {
        ...normalized,
        hostName: host.name,
        footprint,
        ...(placement ? { placement } : {}),
        ...(wakes ? { wakeHost: true } : {}),
      },
      owner,
      ...(requestId ? { requestId } : {}),
      ...(group
        ? {
            prepare: (tx, taskId) =>
              this.quotas.reserve(tx, taskId, group, {
                vcpus: footprint.cpus,
                memoryBytes: footprint.memoryBytes,
                diskBytes: footprint.diskBytes,
                vms: 1,
              }),
          }
        : {}),
    });
  }

  #existing(spec: CreateParams): ManagedObject | undefined {
    const host = this.inventory.index.get(spec.hostId);
    if (!host) return undefined;
    return this.inventory.index
      .query({
        kind: 'vm',
        filters: [{ key: 'name', op: '=', values: [spec.name], text: `name=${spec.name}` }],
        limit: 10,
      })
      .items.find((vm) => vm.connectionId === host.connectionId && vm.status === 'present');
  }
}
