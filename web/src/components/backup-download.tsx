/**
 * Downloading a disk of a backup from the browser: a single-use ticket asked for with the session's
 * token (POST …/download-tickets, backup.restore), then a plain link to the file it names, which
 * the browser saves as it streams (no token in the link, nothing held in memory here).
 */
import { Button, Menu, Text } from '@mantine/core';
import { useState } from 'react';
import {
  backupDownloadTicket,
  type BackupView,
  type DiskImageFormat,
} from '../api/backup-calls.ts';
import type { ApiClient } from '../api/client.ts';
import { reasonOf } from '../api/follow-task.ts';
import { formatBytes } from '../pages/inventory-page.tsx';

export function BackupDownload(props: { backup: BackupView; client: ApiClient }) {
  const { backup, client } = props;
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const damaged = backup.state === 'damaged';

  const download = async (diskId: string, format: DiskImageFormat) => {
    setBusy(true);
    try {
      const ticket = await backupDownloadTicket(client, backup.id, diskId, format);
      const link = document.createElement('a');
      link.href = ticket.path;
      link.download = ticket.fileName;
      document.body.append(link);
      link.click();
      link.remove();
      setError(null);
    } catch (failure) {
      setError(reasonOf(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <Menu position="bottom-start">
        <Menu.Target>
          <Button
            size="xs"
            variant="default"
            loading={busy}
            disabled={damaged}
            title={damaged ? 'Damaged: not downloaded' : undefined}
          >
            Download ▾
          </Button>
        </Menu.Target>
        <Menu.Dropdown>
          {backup.disks.flatMap((disk) =>
            (['qcow2', 'raw'] as const).map((format) => (
              <Menu.Item
                key={`${disk.diskId}-${format}`}
                onClick={() => void download(disk.diskId, format)}
              >
                {disk.diskId} as {format}
                {format === 'raw' ? ` (${formatBytes(disk.capacityBytes)})` : ' (its data only)'}
              </Menu.Item>
            )),
          )}
        </Menu.Dropdown>
      </Menu>
      {error && (
        <Text c="red" size="xs">
          {error}
        </Text>
      )}
    </>
  );
}
