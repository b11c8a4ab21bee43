/**
 * The field of a destructive dialog where the user types the object's name to confirm (deleting a
 * VM, restoring over it); the dialog compares what was typed with the name.
 */
import { TextInput } from '@mantine/core';

export function NameConfirmation(props: {
  name: string;
  value: string;
  onChange: (value: string) => void;
  /** Focused when the dialog opens. */
  autoFocus?: boolean;
}) {
  return (
    <TextInput
      label={`Type ${props.name} to confirm`}
      value={props.value}
      onChange={(event) => props.onChange(event.currentTarget.value)}
      autoComplete="off"
      data-autofocus={props.autoFocus === true ? true : undefined}
    />
  );
}
