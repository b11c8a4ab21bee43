/**
 * A page that fails to render (its chunk would not load, or its code threw) shows why and a way
 * to load it again, instead of taking the whole console down with it: the header and the links
 * stay, and opening another page (a new `resetKey`) starts afresh.
 */
import { Alert, Button, Stack, Text } from '@mantine/core';
import { Component, type ReactNode } from 'react';

interface State {
  error: Error | null;
  key: string;
}

export class PageBoundary extends Component<{ resetKey: string; children: ReactNode }, State> {
  override state: State = { error: null, key: this.props.resetKey };

  static getDerivedStateFromError(error: unknown): Partial<State> {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  static getDerivedStateFromProps(
    props: { resetKey: string },
    state: State,
  ): Partial<State> | null {
    return props.resetKey === state.key ? null : { error: null, key: props.resetKey };
  }

  override componentDidCatch(error: unknown): void {
    // The browser's console keeps the whole story (the stack) for whoever reports it.
    console.error('The page failed:', error);
  }

  override render(): ReactNode {
    const { error } = this.state;
    if (!error) return this.props.children;
    return (
      <Alert color="red" role="alert" title="This page could not be shown">
        <Stack gap="sm" align="flex-start">
          <Text size="sm">{error.message}</Text>
          <Button size="xs" variant="light" onClick={() => globalThis.location.reload()}>
            Load the console again
          </Button>
        </Stack>
      </Alert>
    );
  }
}
