/**
 * The inventory's filter bar: words a person types, mapped onto the API's list parameters.
 *   web                    name contains "web" (name~web)
 *   tag:env:prod           has the tag env:prod (tag=env:prod)
 *   power=running          a fact, with the API's operators (= != > >= < <= ~); short names:
 *                          power → power.state, host → location.hostName, cpus → cpu.count,
 *                          os → guest.os
 *   cluster=NAME           in the cluster named NAME (resolved to location.clusterId)
 *   datacenter=NAME        in the datacenter named NAME (resolved to location.datacenterId)
 *   user.owner  !user.owner  the fact exists / does not
 * The server judges every term (ZEN_BAD_FILTER with the term), so this only splits and renames.
 */
export interface FilterBarQuery {
  filters: string[];
  tags: string[];
  /** Terms naming a parent by name, to be resolved to its id before asking. */
  parents: Array<{ kind: 'cluster' | 'datacenter'; name: string; fact: string }>;
}

const aliases: Record<string, string> = {
  power: 'power.state',
  host: 'location.hostName',
  cpus: 'cpu.count',
  os: 'guest.os',
};

const termPattern = /^(!?)([a-zA-Z][a-zA-Z0-9_.:-]*)(!=|>=|<=|=|>|<|~)?(.*)$/s;

export function parseFilterBar(text: string): FilterBarQuery {
  const query: FilterBarQuery = { filters: [], tags: [], parents: [] };
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (word.startsWith('tag:')) {
      if (word.length > 4) query.tags.push(word.slice(4));
      continue;
    }
    const match = termPattern.exec(word);
    const [, negation = '', key = '', op, value = ''] = match ?? [];
    if (!match || (!op && !negation && !key.includes('.'))) {
      // A bare word: part of the name.
      query.filters.push(`name~${word}`);
      continue;
    }
    if ((key === 'cluster' || key === 'datacenter') && op === '=') {
      query.parents.push({ kind: key, name: value, fact: `location.${key}Id` });
      continue;
    }
    query.filters.push(`${negation}${aliases[key] ?? key}${op ?? ''}${value}`);
  }
  return query;
}
