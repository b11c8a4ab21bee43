/**
 * The audit log: records newest first, filtered by actor (id or name), action (prefix), object
 * (id or name) and period, older pages on demand; and the hash chain's verification status
 * (`POST /audit/verify`: intact, or the first record that was edited, deleted or reordered).
 */
import { Badge, Button, Group, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import type { ManagedObject } from '../api/types.ts';
import { time } from './tasks-page.tsx';
import { TableHead } from '../components/table-head.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';

interface AuditRecord {
  seq: number;
  ts: number;
  actorId: string;
  actorName: string;
  action: string;
  targetId: string | null;
  result: string;
  errorCode: string | null;
}

interface Verification {
  ok: boolean;
  records: number;
  firstBad?: { seq: number; problem: string; detail: string };
}

interface Filters {
  actor: string;
  action: string;
  object: string;
  since: string;
  until: string;
}

const empty: Filters = { actor: '', action: '', object: '', since: '', until: '' };
const pageSize = 50;

export function AuditPage(props: { client: ApiClient }) {
  const { client } = props;
  const [form, setForm] = useState<Filters>(empty);
  const [applied, setApplied] = useState<Filters>(empty);
  const [records, setRecords] = useState<AuditRecord[]>([]);
  const [cursor, setCursor] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [verification, setVerification] = useState<Verification | null>(null);
  const [verifying, setVerifying] = useState(false);

  const load = useCallback(
    async (filters: Filters, before: number | null): Promise<void> => {
      const params = new URLSearchParams({ limit: String(pageSize) });
      const actor = filters.actor.trim();
      if (actor) params.set(/^(user|service)_/.test(actor) ? 'actorId' : 'actorName', actor);
      if (filters.action.trim()) params.set('action', filters.action.trim());
      const object = filters.object.trim();
      if (object) {
        // A name is looked up first; an id the inventory no longer knows is asked about as is.
        const found = await client
          .call<ManagedObject>('GET', `/objects/${encodeURIComponent(object)}`)
          .catch(() => null);
        params.set('targetId', found?.id ?? object);
      }
      for (const key of ['since', 'until'] as const) {
        if (!filters[key]) continue;
        const at = Date.parse(filters[key]);
        if (!Number.isFinite(at)) throw new Error(`'${filters[key]}' is not a date and time`);
        params.set(key, String(at));
      }
      if (before !== null) params.set('cursor', String(before));
      const page = await client.call<{ items: AuditRecord[]; nextCursor: number | null }>(
        'GET',
        `/audit?${params.toString()}`,
      );
      setRecords((now) => (before === null ? page.items : [...now, ...page.items]));
      setCursor(page.nextCursor);
    },
    [client],
  );

  useEffect(() => {
    load(applied, null)
      .then(() => setError(null))
      .catch((failure: unknown) =>
        setError(failure instanceof ApiError ? failure.reason : String(failure)),
      );
  }, [load, applied]);

  const verify = useCallback(async () => {
    setVerifying(true);
    try {
      setVerification(await client.call<Verification>('POST', '/audit/verify'));
    } catch (failure) {
      setError(failure instanceof ApiError ? failure.reason : String(failure));
    } finally {
      setVerifying(false);
    }
  }, [client]);
  useEffect(() => {
    void verify();
  }, [verify]);

  const field = (key: keyof Filters, label: string, extra: Record<string, string> = {}) => (
    <TextInput
      label={label}
      value={form[key]}
      onChange={(event) => {
        const value = event.currentTarget.value;
        setForm((now) => ({ ...now, [key]: value }));
      }}
      {...extra}
    />
  );

  return (
    <Stack>
      <Title order={2}>Audit log</Title>
      <Group aria-label="Chain verification" role="status">
        <Text>Hash chain:</Text>
        {verification === null ? (
          <Text c="dimmed">verifying…</Text>
        ) : verification.ok ? (
          <Badge color="green" variant="light" size="lg" tt="none">
            intact ({verification.records} records)
          </Badge>
        ) : (
          <Badge color="red" variant="filled" size="lg" tt="none">
            broken at record {verification.firstBad?.seq}: {verification.firstBad?.problem}
          </Badge>
        )}
        {verification?.firstBad && <Text size="sm">{verification.firstBad.detail}</Text>}
        <Button variant="default" size="xs" loading={verifying} onClick={() => void verify()}>
          Verify again
        </Button>
      </Group>
      <form
        aria-label="Audit filters"
        onSubmit={(event) => {
          event.preventDefault();
          setApplied(form);
        }}
      >
        <Group align="end">
          {field('actor', 'Actor (name or id)')}
          {field('action', 'Action (prefix, e.g. vm.)')}
          {field('object', 'Object (name or id)')}
          {field('since', 'From', { type: 'datetime-local' })}
          {field('until', 'Until', { type: 'datetime-local' })}
          <Button type="submit">Filter</Button>
          <Button
            variant="default"
            onClick={() => {
              setForm(empty);
              setApplied(empty);
            }}
          >
            Clear
          </Button>
        </Group>
      </form>
      <ErrorAlert title="The audit log could not be loaded" error={error} />
      <Table aria-label="Audit records" striped>
        <TableHead columns={['#', 'At', 'Actor', 'Action', 'Object', 'Result']} />
        <Table.Tbody>
          {records.map((record) => (
            <Table.Tr key={record.seq}>
              <Table.Td>{record.seq}</Table.Td>
              <Table.Td>{time(record.ts)}</Table.Td>
              <Table.Td>{record.actorName}</Table.Td>
              <Table.Td>{record.action}</Table.Td>
              <Table.Td>{record.targetId ?? '—'}</Table.Td>
              <Table.Td>
                {record.result}
                {record.errorCode ? ` (${record.errorCode})` : ''}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {records.length === 0 && <Text c="dimmed">No records match.</Text>}
      {cursor !== null && (
        <Button
          variant="default"
          onClick={() =>
            void load(applied, cursor).catch((failure: unknown) =>
              setError(failure instanceof ApiError ? failure.reason : String(failure)),
            )
          }
        >
          Older records
        </Button>
      )}
    </Stack>
  );
}
