/** The foot of a dialog: the button that dismisses it (Close, or Cancel), then the dialog's own. */
import { Button, Group } from '@mantine/core';
import type { ReactNode } from 'react';

export function DialogButtons(props: {
  onDismiss: () => void;
  dismissLabel?: 'Close' | 'Cancel';
  children: ReactNode;
}) {
  return (
    <Group justify="flex-end">
      <Button variant="default" onClick={props.onDismiss}>
        {props.dismissLabel ?? 'Close'}
      </Button>
      {props.children}
    </Group>
  );
}
