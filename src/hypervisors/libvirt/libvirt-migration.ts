/**
 * Live migration of a domain to another libvirt host, peer to peer: the
 * source daemon opens the destination daemon itself (`peer.uri`, as the
 * source host reaches it) and runs the whole protocol; we only ask and watch.
 * Progress comes from the source's job statistics; cancelling aborts the job
 * (the guest stays on the source). The domain is made persistent on the
 * destination and undefined on the source, so exactly one host keeps it.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { LibvirtClient } from '../../protocols/libvirt/libvirt-client.js';
import { domainEventJobCompleted } from '../../protocols/libvirt/procedures/events.js';
import {
  JOB_TYPE,
  MIGRATE,
  MIGRATE_PARAM,
  domainAbortJob,
  domainGetJobStats,
  domainMigratePerform3Params,
  domainMigrateSetMaxDowntime,
} from '../../protocols/libvirt/procedures/migration.js';
import {
  typedParam,
  typedParamNumber,
  type DomainRef,
  type TypedParam,
} from '../../protocols/libvirt/remote-types.js';
import type { ActionContext, MigrateOptions } from '../driver.js';
import { translateLibvirtError } from './libvirt-errors.js';

/** How other libvirt hosts reach this one for a migration. */
export interface MigrationPeer {
  /** The libvirt URI the source daemon opens, e.g. qemu+tls://kvm-2/system. */
  uri: string;
  /** Where the source QEMU sends the data, e.g. tcp://10.0.0.6 (libvirt's choice when absent). */
  dataUri?: string;
}

export interface MigrationStats {
  totalTimeMs: number;
  downtimeMs: number | null;
  transferredBytes: number;
}

const MiB = 1024 * 1024;
/** A migration is not an ordinary call: it may run for hours on a slow link. */
const MIGRATION_CALL_LIMIT_MS = 24 * 3600_000;

function progressOf(params: readonly TypedParam[]): {
  percent: number;
  processed: number;
  remaining: number;
  iteration: number | undefined;
} {
  const processed =
    typedParamNumber(params, 'data_processed') ?? typedParamNumber(params, 'memory_processed') ?? 0;
  const remaining =
    typedParamNumber(params, 'data_remaining') ?? typedParamNumber(params, 'memory_remaining') ?? 0;
  const percent = Math.min(99, Math.round((100 * processed) / Math.max(1, processed + remaining)));
  return { percent, processed, remaining, iteration: typedParamNumber(params, 'memory_iteration') };
}

export async function migrateDomain(
  client: LibvirtClient,
  dom: DomainRef,
  peer: MigrationPeer,
  options: MigrateOptions & { live: boolean },
  context: ActionContext,
  clock: Clock,
  pollMs = 200,
): Promise<MigrationStats> {
  const action = `migrate ${dom.name} to ${peer.uri}`;
  let completed: readonly TypedParam[] | undefined;
  const stopListening = client.onEvent(domainEventJobCompleted, (event) => {
    if (event.dom.uuid === dom.uuid) completed = event.params;
  });
  try {
    if (options.live && options.maxDowntimeMs)
      await client.call(domainMigrateSetMaxDowntime, {
        dom,
        downtime: BigInt(options.maxDowntimeMs),
        flags: 0,
      });
    const params: TypedParam[] = [];
    if (peer.dataUri) params.push(typedParam.string(MIGRATE_PARAM.uri, peer.dataUri));
    if (options.maxBandwidthBytesPerSecond)
      params.push(
        typedParam.ullong(
          MIGRATE_PARAM.bandwidth,
          BigInt(Math.max(1, Math.floor(options.maxBandwidthBytesPerSecond / MiB))),
        ),
      );
    const flags =
      MIGRATE.peer2peer |
      MIGRATE.persistDest |
      MIGRATE.undefineSource |
      (options.live ? MIGRATE.live : MIGRATE.offline) |
      (options.withStorage ? MIGRATE.nonSharedDisk : 0);
    const started = performance.now();
    let settled = false;
    const perform = client
      .call(
        domainMigratePerform3Params,
        { dom, dconnuri: peer.uri, params, cookie_in: Buffer.alloc(0), flags },
        { timeoutMs: MIGRATION_CALL_LIMIT_MS },
      )
      .finally(() => (settled = true));
    perform.catch(() => undefined);
    let aborted = false;
    while (!settled) {
      await clock.sleep(pollMs).catch(() => undefined);
      if (settled) break;
      if (context.signal.aborted && !aborted) {
        aborted = true;
        await client.call(domainAbortJob, { dom }).catch(() => undefined);
        continue;
      }
      const job = await client.call(domainGetJobStats, { dom, flags: 0 }).catch(() => undefined);
      if (job && (job.type === JOB_TYPE.bounded || job.type === JOB_TYPE.unbounded)) {
        const progress = progressOf(job.params);
        context.progress({
          percent: progress.percent,
          message: progress.iteration ? `pass ${progress.iteration}` : 'copying memory',
          details: { bytesSent: progress.processed, bytesRemaining: progress.remaining },
        });
      }
    }
    try {
      await perform;
    } catch (error) {
      if (aborted)
        throw new ZenithError(
          'ZEN_TASK_CANCELLED',
          'the migration was cancelled; the VM stays on its host',
          { cause: (error as Error).message },
        );
      const translated = translateLibvirtError(error, action);
      throw new ZenithError(
        translated.code,
        `${translated.message}; the VM stays on its host`,
        translated.details,
        { cause: error },
      );
    }
    const wallMs = Math.round(performance.now() - started);
    // The job-completed event usually arrives with or just before the reply; wait a moment for it.
    for (let i = 0; i < 10 && !completed; i++) await clock.sleep(50).catch(() => undefined);
    const stats = completed ?? [];
    return {
      totalTimeMs: typedParamNumber(stats, 'time_elapsed') || wallMs,
      downtimeMs: typedParamNumber(stats, 'downtime') ?? null,
      transferredBytes:
        typedParamNumber(stats, 'data_processed') ??
        typedParamNumber(stats, 'memory_processed') ??
        0,
    };
  } finally {
    stopListening();
  }
}
