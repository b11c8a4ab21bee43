/**
 * An agent host's facets as its driver declares them, without a server: they
 * follow the agent's channel. The migration facet is in every protocol
 * version; the portable-VM facet is offered only while an agent that has it
 * is connected — a disconnected agent has no version and can do nothing now,
 * so a service choosing a host passes over it, and one that requires the
 * facet is told why, with the code of the cause, before anything is sent.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isZenithError, ZenithError } from '../../src/core/errors.js';
import { AgentDriver } from '../../src/hypervisors/agent/agent-driver.js';
import { facetOf, requireFacet, type PortableVm } from '../../src/hypervisors/driver.js';
import type { AgentLink } from '../../src/protocols/agent-channel/agent-link.js';
import { agentCalls, type AgentMethod } from '../../src/protocols/agent-channel/call-map.js';
import { speaks, type ProtocolVersion } from '../../src/protocols/agent-channel/version.js';

const coded =
  (code: string, message?: RegExp) =>
  (error: unknown): boolean =>
    isZenithError(error) && error.code === code && (!message || message.test(error.message));

/** A channel that records what it is asked and answers nothing. */
function channel(protocol: ProtocolVersion, connected = true) {
  const asked: string[] = [];
  const link: AgentLink = {
    connected,
    protocol,
    supports: (method: AgentMethod) => speaks(protocol, agentCalls[method].since),
    call: (method) => {
      asked.push(method);
      return Promise.reject(new ZenithError('ZEN_TIMEOUT', 'no answer in this test'));
    },
    metrics: () => undefined,
    deltas: () => ({
      [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ done: true, value: null }) }),
    }),
    openConsole: () => Promise.reject(new ZenithError('ZEN_UNSUPPORTED', 'no consoles here')),
  };
  return { link, asked };
}

const context = { signal: new AbortController().signal, progress: () => undefined };
const roamer: PortableVm = {
  uuid: '6f1c2a7e-3b5d-4c8e-9a0f-1d2e3f4a5b6c',
  name: 'roamer',
  cpus: 1,
  memoryBytes: 33554432,
  firmware: 'bios',
  machine: 'q35',
  boot: { kind: 'disk' },
  disks: [],
  nics: [],
  serialConsole: true,
  graphics: false,
};

describe('an agent host’s facets follow its channel', () => {
  test('while no agent is connected, the portable-VM facet is absent and requiring it says so with ZEN_CONNECTION_DISCONNECTED', () => {
    for (const link of [undefined, channel({ major: 1, minor: 1 }, false).link]) {
      const driver = new AgentDriver(() => link);
      assert.equal(facetOf(driver, 'portableVms'), undefined);
      assert.throws(
        () => requireFacet(driver, 'portableVms', 'run a VM from a description'),
        coded('ZEN_CONNECTION_DISCONNECTED', /run a VM from a description.*not connected/),
      );
    }
  });

  test('the migration facet stays declared, and its calls are refused before anything is sent', async () => {
    const away = channel({ major: 1, minor: 1 }, false);
    const driver = new AgentDriver(() => away.link);
    const migration = requireFacet(driver, 'migration', 'migrate');
    await assert.rejects(migration.exportVm('q1'), coded('ZEN_CONNECTION_DISCONNECTED'));
    await assert.rejects(migration.abortIncoming('m1'), coded('ZEN_CONNECTION_DISCONNECTED'));
    assert.deepEqual(away.asked, [], 'nothing reached the channel');
  });

  test('a connected agent of 1.1 has the facet; one of 1.0 has not, and is told to upgrade', async () => {
    let link: AgentLink | undefined;
    const driver = new AgentDriver(() => link);
    const current = channel({ major: 1, minor: 1 });
    link = current.link;
    const facet = requireFacet(driver, 'portableVms', 'run a VM from a description');
    await assert.rejects(facet.runVm(roamer, { start: true }, context), coded('ZEN_TIMEOUT'));
    assert.deepEqual(current.asked, ['runVm'], 'a connected agent is asked');

    link = channel({ major: 1, minor: 0 }).link;
    assert.equal(facetOf(driver, 'portableVms'), undefined);
    assert.throws(
      () => requireFacet(driver, 'portableVms', 'run a VM from a description'),
      coded('ZEN_UNSUPPORTED', /1\.0.*upgrade the agent/),
    );

    // The agent goes away, then comes back: the facet is read anew each time.
    link = undefined;
    assert.equal(facetOf(driver, 'portableVms'), undefined);
    link = current.link;
    assert.ok(facetOf(driver, 'portableVms'));
  });
});
