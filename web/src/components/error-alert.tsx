/**
 * A refusal or failure in red under its title, announced to screen readers (role alert); nothing
 * while there is none. The console's panels and dialogs show their errors with it.
 */
import { Alert, type AlertProps } from '@mantine/core';

export function ErrorAlert(
  props: { title: string; error: string | null | undefined } & Pick<AlertProps, 'mt' | 'mb'>,
) {
  const { title, error, ...spacing } = props;
  if (!error) return null;
  return (
    <Alert color="red" role="alert" title={title} {...spacing}>
      {error}
    </Alert>
  );
}
