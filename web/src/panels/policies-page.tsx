/**
 * The policy editor: the saved policies, and a draft edited as the policy's JSON document, tested
 * against the live inventory as it is typed (`POST /policies/test`, debounced: which VMs it
 * applies to, which break it where they run now, failures with line and column), then created or
 * saved as a new version. An expression can be tried alone across the fleet (which VMs or hosts
 * match). Saving needs `policy.manage`; reading and testing `policy.read`.
 */
import {
  Alert,
  Badge,
  Button,
  Grid,
  Group,
  NavLink,
  Stack,
  Text,
  Textarea,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedValue, useInputState } from '@mantine/hooks';
import { useCallback, useEffect, useState } from 'react';
import { ApiError } from '../api/api-error.ts';
import type { ApiClient } from '../api/client.ts';
import { usePermissions } from '../permissions.ts';
import {
  ExpressionTestView,
  PolicyTestView,
  TestRefusal,
  type ExpressionTestAnswer,
  type PolicyTestAnswer,
} from './policy-test-result.tsx';

interface PolicyView {
  id: string;
  name: string;
  description: string | null;
  enabled: boolean;
  scope: { kind: string; id: string | null; name: string | null };
  when: string | null;
  constraints: unknown[];
  preferences: unknown[];
  rules: unknown[];
  settings: Record<string, unknown>;
}

const template = {
  name: 'new-policy',
  description: 'what this policy is for',
  scope: { kind: 'global' },
  when: "'env:prod' in vm.tags",
  constraints: [{ name: 'prod-hosts', expression: 'host.cpu.cores >= 32' }],
};

/** The document a policy is written as (what POST /policies takes), from what GET answers. */
function documentOf(policy: PolicyView): string {
  const scope: Record<string, string> = { kind: policy.scope.kind };
  if (policy.scope.id) scope.id = policy.scope.id;
  const document: Record<string, unknown> = { name: policy.name, scope, enabled: policy.enabled };
  if (policy.description) document.description = policy.description;
  if (policy.when) document.when = policy.when;
  if (policy.constraints.length > 0) document.constraints = policy.constraints;
  if (policy.preferences.length > 0) document.preferences = policy.preferences;
  if (policy.rules.length > 0) document.rules = policy.rules;
  if (Object.keys(policy.settings).length > 0) document.settings = policy.settings;
  return JSON.stringify(document, null, 2);
}

function parseDraft(text: string): { draft: unknown } | { error: Error } {
  try {
    return { draft: JSON.parse(text) as unknown };
  } catch (failure) {
    return { error: new Error(`not JSON: ${(failure as Error).message}`) };
  }
}

export function PoliciesPage(props: { client: ApiClient }) {
  const { client } = props;
  const mayManage = usePermissions().can('policy.manage');
  const [policies, setPolicies] = useState<PolicyView[]>([]);
  const [selected, setSelected] = useState<PolicyView | null>(null);
  const [text, setText] = useInputState(JSON.stringify(template, null, 2));
  const [debouncedText] = useDebouncedValue(text, 400);
  const [test, setTest] = useState<PolicyTestAnswer | null>(null);
  const [refusal, setRefusal] = useState<ApiError | Error | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [expression, setExpression] = useInputState('');
  const [debouncedExpression] = useDebouncedValue(expression, 400);
  const [expressionTest, setExpressionTest] = useState<ExpressionTestAnswer | null>(null);
  const [expressionRefusal, setExpressionRefusal] = useState<ApiError | Error | null>(null);

  const reload = useCallback(async () => {
    const answer = await client.call<{ items: PolicyView[] }>('GET', '/policies');
    setPolicies(answer.items);
  }, [client]);
  useEffect(() => {
    void reload().catch((failure: unknown) =>
      setRefusal(failure instanceof Error ? failure : new Error(String(failure))),
    );
  }, [reload]);

  // The live test of the draft.
  useEffect(() => {
    const parsed = parseDraft(debouncedText);
    if ('error' in parsed) {
      setRefusal(parsed.error);
      setTest(null);
      return;
    }
    const abort = new AbortController();
    client
      .call<PolicyTestAnswer>('POST', '/policies/test', { policy: parsed.draft }, abort.signal)
      .then((answer) => {
        setTest(answer);
        setRefusal(null);
      })
      .catch((failure: unknown) => {
        if (abort.signal.aborted) return;
        setTest(null);
        setRefusal(failure instanceof Error ? failure : new Error(String(failure)));
      });
    return () => abort.abort();
  }, [client, debouncedText]);

  // The live test of one expression across the fleet.
  useEffect(() => {
    if (debouncedExpression.trim() === '') {
      setExpressionTest(null);
      setExpressionRefusal(null);
      return;
    }
    const abort = new AbortController();
    client
      .call<ExpressionTestAnswer>(
        'POST',
        '/policies/test',
        { expression: debouncedExpression, limit: 50 },
        abort.signal,
      )
      .then((answer) => {
        setExpressionTest(answer);
        setExpressionRefusal(null);
      })
      .catch((failure: unknown) => {
        if (abort.signal.aborted) return;
        setExpressionTest(null);
        setExpressionRefusal(failure instanceof Error ? failure : new Error(String(failure)));
      });
    return () => abort.abort();
  }, [client, debouncedExpression]);

  const save = async () => {
    const parsed = parseDraft(text);
    if ('error' in parsed) return setRefusal(parsed.error);
    try {
      const saved = selected
        ? await client.call<PolicyView>(
            'PUT',
            `/policies/${encodeURIComponent(selected.id)}`,
            parsed.draft,
          )
        : await client.call<PolicyView>('POST', '/policies', parsed.draft);
      setSelected(saved);
      setNotice(`Saved ${saved.name}.`);
      await reload();
    } catch (failure) {
      setRefusal(failure instanceof Error ? failure : new Error(String(failure)));
    }
  };
  const remove = async () => {
    if (!selected) return;
    try {
      await client.call('DELETE', `/policies/${encodeURIComponent(selected.id)}`);
      setNotice(`Deleted ${selected.name}.`);
      setSelected(null);
      setText(JSON.stringify(template, null, 2));
      await reload();
    } catch (failure) {
      setRefusal(failure instanceof Error ? failure : new Error(String(failure)));
    }
  };

  return (
    <Stack>
      <Title order={2}>Policies</Title>
      <Grid>
        <Grid.Col span={{ base: 12, md: 3 }}>
          <nav aria-label="Saved policies">
            {mayManage && (
              <Button
                variant="light"
                fullWidth
                mb="xs"
                onClick={() => {
                  setSelected(null);
                  setNotice(null);
                  setText(JSON.stringify(template, null, 2));
                }}
              >
                New policy
              </Button>
            )}
            {policies.map((policy) => (
              <NavLink
                key={policy.id}
                href="#/policies"
                label={policy.name}
                description={`${policy.scope.kind}${policy.scope.name ? ` ${policy.scope.name}` : ''}`}
                active={selected?.id === policy.id}
                rightSection={
                  policy.enabled ? null : (
                    <Badge size="xs" color="gray">
                      off
                    </Badge>
                  )
                }
                onClick={(event) => {
                  event.preventDefault();
                  setSelected(policy);
                  setNotice(null);
                  setText(documentOf(policy));
                }}
              />
            ))}
            {policies.length === 0 && <Text c="dimmed">No policies yet.</Text>}
          </nav>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 9 }}>
          <Stack>
            <Textarea
              label={selected ? `Policy ${selected.name} (JSON)` : 'New policy (JSON)'}
              description="Tested against the live inventory as you type"
              value={text}
              onChange={setText}
              autosize
              minRows={10}
              styles={{ input: { fontFamily: 'monospace' } }}
              spellCheck={false}
            />
            {mayManage && (
              <Group>
                <Button onClick={() => void save()}>
                  {selected ? 'Save a new version' : 'Create policy'}
                </Button>
                {selected && (
                  <Button color="red" variant="light" onClick={() => void remove()}>
                    Delete policy
                  </Button>
                )}
              </Group>
            )}
            {notice && (
              <Alert color="green" title="Done">
                {notice}
              </Alert>
            )}
            {refusal && <TestRefusal error={refusal} />}
            {test && <PolicyTestView answer={test} />}
            <TextInput
              label="Try an expression across the fleet"
              description="e.g. vm.cpu.count >= 4, or host.cpu.cores > 32"
              value={expression}
              onChange={setExpression}
              styles={{ input: { fontFamily: 'monospace' } }}
            />
            {expressionRefusal && <TestRefusal error={expressionRefusal} />}
            {expressionTest && <ExpressionTestView answer={expressionTest} />}
          </Stack>
        </Grid.Col>
      </Grid>
    </Stack>
  );
}
