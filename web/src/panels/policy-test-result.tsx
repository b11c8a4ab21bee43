/** What `POST /policies/test` answered for a draft policy or an expression, for a person to read. */
import { Alert, Code, List, Stack, Table, Text, Title } from '@mantine/core';
import type { ApiError } from '../api/api-error.ts';
import { TableHead } from '../components/table-head.tsx';

interface Ref {
  vmName: string;
  hostName: string | null;
}
interface Failure extends Ref {
  code: string;
  message: string;
  line: number | null;
  column: number | null;
}
export interface PolicyTestAnswer {
  appliesTo: { vms: number; sample: string[] };
  constraints: Array<{
    name: string;
    holds: number;
    violated: number;
    failed: number;
    violations: Ref[];
    failures: Failure[];
  }>;
  rules: Array<{
    name: string;
    kind: string;
    members: number;
    violations: Array<Ref & { detail: string }>;
  }>;
}
export interface ExpressionTestAnswer {
  type: string;
  evaluated?: number;
  over?: 'vms' | 'hosts';
  counts?: Array<{ value: string; count: number }>;
  matches?: string[];
  failures?: Failure[];
}

const at = (line: unknown, column: unknown) =>
  typeof line === 'number' ? `line ${line}, column ${String(column)}` : '';

/** A refusal (syntax error, invalid policy) with where it is, when the API says. */
export function TestRefusal(props: { error: ApiError | Error }) {
  const { error } = props;
  const details = 'details' in error ? error.details : {};
  const where = [
    typeof details.field === 'string' ? details.field : '',
    at(details.line, details.column),
  ]
    .filter((part) => part !== '')
    .join(', ');
  return (
    <Alert color="red" role="alert" title={'code' in error ? error.code : 'Not valid'}>
      {where && <Text fw={600}>At {where}</Text>}
      <Code block>{error.message}</Code>
    </Alert>
  );
}

function Failures(props: { failures: Failure[] }) {
  if (props.failures.length === 0) return null;
  return (
    <List size="sm" aria-label="Evaluation failures">
      {props.failures.map((f, i) => (
        <List.Item key={i}>
          {f.vmName}
          {f.hostName ? ` on ${f.hostName}` : ''}: {f.code} at {at(f.line, f.column)} — {f.message}
        </List.Item>
      ))}
    </List>
  );
}

export function PolicyTestView(props: { answer: PolicyTestAnswer }) {
  const { answer } = props;
  return (
    <Stack gap="xs" aria-label="Policy test result">
      <Text>
        Applies to <strong>{answer.appliesTo.vms}</strong> VMs
        {answer.appliesTo.sample.length > 0 ? `, e.g. ${answer.appliesTo.sample.join(', ')}` : ''}
      </Text>
      {answer.constraints.length > 0 && (
        <Table aria-label="Constraints against the inventory">
          <TableHead
            columns={['Constraint', 'Holds', 'Violated', 'Failed', 'Where it does not hold now']}
          />
          <Table.Tbody>
            {answer.constraints.map((c) => (
              <Table.Tr key={c.name}>
                <Table.Td>{c.name}</Table.Td>
                <Table.Td>{c.holds}</Table.Td>
                <Table.Td>{c.violated}</Table.Td>
                <Table.Td>{c.failed}</Table.Td>
                <Table.Td>
                  {c.violations.map((v) => `${v.vmName} on ${v.hostName ?? '—'}`).join(', ')}
                  <Failures failures={c.failures} />
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {answer.rules.map((rule) => (
        <Text key={rule.name} size="sm">
          Rule {rule.name} ({rule.kind}): {rule.members} VMs,{' '}
          {rule.violations.length === 0
            ? 'holds'
            : `broken: ${rule.violations.map((v) => `${v.vmName} (${v.detail})`).join(', ')}`}
        </Text>
      ))}
    </Stack>
  );
}

export function ExpressionTestView(props: { answer: ExpressionTestAnswer }) {
  const { answer } = props;
  return (
    <Stack gap="xs" role="region" aria-label="Expression test result">
      <Title order={5}>
        Over {answer.evaluated ?? 0} {answer.over ?? 'objects'} ({answer.type})
      </Title>
      {answer.counts && (
        <Text size="sm">{answer.counts.map((c) => `${c.value}: ${c.count}`).join(' · ')}</Text>
      )}
      {answer.matches && answer.matches.length > 0 && (
        <Text size="sm">Matching: {answer.matches.join(', ')}</Text>
      )}
      <Failures failures={answer.failures ?? []} />
    </Stack>
  );
}
