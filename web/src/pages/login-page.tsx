import { useInputState } from '@mantine/hooks';
import {
  Alert,
  Button,
  Center,
  Paper,
  PasswordInput,
  Stack,
  TextInput,
  Title,
} from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { ApiError } from '../api/api-error.ts';
import { login } from '../api/client.ts';
import type { Session } from '../session.ts';
import { ErrorAlert } from '../components/error-alert.tsx';

export function LoginPage(props: {
  notice: string | null;
  onLoggedIn: (session: Session) => void;
}) {
  const [username, setUsername] = useInputState('');
  const [password, setPassword] = useInputState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await login(username, password);
      props.onLoggedIn(answer);
    } catch (failure) {
      setError(failure instanceof ApiError ? failure.reason : 'The server could not be reached.');
    } finally {
      setBusy(false);
    }
  };

  return (
    <Center mih="100vh">
      <Paper withBorder shadow="sm" p="xl" w={360}>
        <form onSubmit={(event) => void submit(event)} aria-label="Log in">
          <Stack>
            <Title order={2}>Zenith</Title>
            {props.notice && <Alert color="yellow">{props.notice}</Alert>}
            <ErrorAlert title="Login refused" error={error} />
            <TextInput
              label="User name"
              autoComplete="username"
              required
              value={username}
              onChange={setUsername}
            />
            <PasswordInput
              label="Password"
              autoComplete="current-password"
              required
              value={password}
              onChange={setPassword}
            />
            <Button type="submit" loading={busy}>
              Log in
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
