/** `zenith images`: the image library — list, show, and scan a host's storage now. */
import type { Command } from 'commander';
import type { getImage, listImages, ScanSummaryView } from '../../api/images.js';
import type { AnswerOf } from '../../api/operation.js';
import { formatBytes, formatTime, printJson, printKeyValues, printTable } from '../output.js';
import { waitForTask } from '../progress.js';
import { ApiClient } from '../client.js';
import { addShowCommand, clientOf, type Globals } from './globals.js';

interface ListOptions {
  host?: string;
  kind?: string;
  format?: string;
  orphaned?: boolean;
  missing?: boolean;
  limit: string;
}

type ImageItem = AnswerOf<typeof listImages>['items'][number];

function usageText(image: ImageItem): string {
  if (image.problem) return 'corrupt';
  if (!image.owner) return image.usage;
  return `${image.usage} (${image.owner.vmName})`;
}

export function registerImages(program: Command): void {
  const images = program
    .command('images')
    .description('The image library: disk images, ISO files, kernels and initrds on hosts');
  images
    .command('list', { isDefault: true })
    .description('List the images on the hosts you may read (all pages)')
    .option('--host <host>', 'only this host')
    .option('--kind <kind>', 'disk, iso, kernel or initrd')
    .option('--format <format>', 'qcow2, vmdk, raw, iso, kernel or initrd')
    .option('--orphaned', 'only disks no defined VM uses (with what they take)')
    .option('--missing', 'files gone since a scan found them')
    .option('--limit <n>', 'page size', '500')
    .action(async (options: ListOptions, command: Command) => {
      const { api, json } = clientOf(command);
      const items: ImageItem[] = [];
      let cursor: string | null = null;
      do {
        const query = new URLSearchParams({
          limit: options.limit,
          ...(options.host ? { host: options.host } : {}),
          ...(options.kind ? { kind: options.kind } : {}),
          ...(options.format ? { format: options.format } : {}),
          ...(options.orphaned ? { orphaned: 'true' } : {}),
          ...(options.missing ? { status: 'missing' } : {}),
          ...(cursor ? { cursor } : {}),
        });
        const page: AnswerOf<typeof listImages> = await api.get(`/images?${query.toString()}`);
        items.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor);
      if (json) return printJson({ items });
      printTable(
        ['HOST', 'PATH', 'FORMAT', 'VIRTUAL', 'ON DISK', 'USE', 'ID'],
        items.map((image) => [
          image.hostName ?? image.hostId,
          image.path,
          image.format,
          formatBytes(image.virtualBytes),
          formatBytes(image.allocatedBytes),
          usageText(image),
          image.id,
        ]),
      );
      if (options.orphaned) {
        const bytes = items.reduce((sum, image) => sum + image.allocatedBytes, 0);
        process.stdout.write(`${items.length} orphaned disks take ${formatBytes(bytes)}\n`);
      }
    });
  addShowCommand<AnswerOf<typeof getImage>>(images, {
    usage: 'show <id>',
    description: 'One image with its facts',
    path: (id) => `/images/${encodeURIComponent(id)}`,
    print: (image) =>
      printKeyValues([
        ['id', image.id],
        ['host', image.hostName ?? image.hostId],
        ['path', image.path],
        ['root', image.root],
        ['format', image.format],
        ['kind', image.kind],
        ['virtual size', formatBytes(image.virtualBytes)],
        ['file size', formatBytes(image.fileBytes)],
        ['on disk', formatBytes(image.allocatedBytes)],
        ['backing file', image.backingFile],
        ['label', image.label],
        ['link to', image.linkTarget],
        ['problem', image.problem ? `${image.problem.code}: ${image.problem.message}` : null],
        ['use', usageText(image)],
        ['owner VM', image.owner ? (image.owner.vmId ?? image.owner.vmUuid) : null],
        ['status', image.status],
        ['modified', formatTime(image.modifiedAt)],
        ['scanned', formatTime(image.scannedAt)],
      ]),
  });
  images
    .command('scan <host>')
    .description("Scan a host's storage for images now (headers only) and wait for the result")
    .option('--no-wait', 'return as soon as the task is queued')
    .action(async (host: string, options: { wait: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const client = ApiClient.fromConfig(globals);
      const task = await client.request<{ id: string; kind: string }>(
        'POST',
        `/hosts/${encodeURIComponent(host)}/images/scan`,
        {},
      );
      if (!options.wait) {
        if (globals.json) printJson(task);
        else process.stderr.write(`queued ${task.kind} as ${task.id}\n`);
        return;
      }
      const done = await waitForTask(client, task.id, { quiet: globals.json === true });
      if (globals.json) return printJson(done);
      const result = (done as unknown as { result: ScanSummaryView }).result;
      printKeyValues([
        ['images', result.images],
        ['new', result.created],
        ['gone', result.missing],
        ['corrupt', result.corrupt],
        ['orphaned', `${result.orphaned} (${formatBytes(result.orphanedBytes)})`],
        ['took', `${result.durationMs} ms`],
        ...result.roots
          .filter((root) => root.error)
          .map((root): [string, unknown] => [`root ${root.root}`, root.error?.message]),
        ['truncated', result.truncated],
      ]);
    });
}
