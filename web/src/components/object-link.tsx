/**
 * A link to an object in a narrow table cell: its name when the row knows it, otherwise a short
 * form of its id (prefix and last characters), the whole id in the title. Full ids (30 characters)
 * made the tasks and events tables wider than a 1440-pixel screen's half.
 */
import { Anchor, Text } from '@mantine/core';
import { hrefOf } from '../hash-route.ts';

export function shortId(id: string): string {
  const cut = id.indexOf('_');
  return id.length > 16 && cut > 0 ? `${id.slice(0, cut + 1)}…${id.slice(-6)}` : id;
}

export function ObjectLink(props: { id: string | null; name?: string | null }) {
  const { id, name } = props;
  if (!id) return <Text span>—</Text>;
  const text = name ?? shortId(id);
  if (id.startsWith('vm_'))
    return (
      <Anchor href={hrefOf.vm(id)} title={id}>
        {text}
      </Anchor>
    );
  if (id.startsWith('host_'))
    return (
      <Anchor href={hrefOf.host(id)} title={id}>
        {text}
      </Anchor>
    );
  return (
    <Text span title={id}>
      {text}
    </Text>
  );
}
