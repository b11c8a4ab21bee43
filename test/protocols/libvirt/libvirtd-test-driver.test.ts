/**
 * The libvirt client against a real libvirtd (started here, in a private mount
 * namespace), using libvirt's own test hypervisor through the daemon
 * (test+unix:///default): the deterministic fake that libvirt maintains.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { ZenithError } from '../../../src/core/errors.js';
import { LibvirtClient } from '../../../src/protocols/libvirt/libvirt-client.js';
import {
  connectGetCapabilities,
  connectGetHostname,
  connectGetLibVersion,
  connectGetType,
  connectGetVersion,
  nodeGetInfo,
} from '../../../src/protocols/libvirt/procedures/connect.js';
import {
  DOMAIN_STATE,
  DOMAIN_STATS,
  LIST_DOMAINS,
  UNDEFINE,
  connectGetAllDomainStats,
  connectListAllDomains,
  domainCreate,
  domainCreateXml,
  domainDefineXml,
  domainDestroy,
  domainGetInfo,
  domainGetState,
  domainGetXmlDesc,
  domainLookupByName,
  domainLookupByUuid,
  domainResume,
  domainShutdown,
  domainSuspend,
  domainUndefineFlags,
} from '../../../src/protocols/libvirt/procedures/domain.js';
import {
  DOMAIN_EVENT_ID,
  LIFECYCLE_EVENT,
  connectDomainEventCallbackDeregisterAny,
  connectDomainEventCallbackRegisterAny,
  domainEventLifecycle,
} from '../../../src/protocols/libvirt/procedures/events.js';
import {
  MIGRATE,
  MIGRATE_PARAM,
  domainGetJobStats,
  domainMigratePerform3Params,
  domainMigrateSetMaxDowntime,
  domainMigrateSetMaxSpeed,
} from '../../../src/protocols/libvirt/procedures/migration.js';
import {
  connectListAllNetworks,
  networkGetXmlDesc,
} from '../../../src/protocols/libvirt/procedures/network.js';
import {
  domainListAllSnapshots,
  domainRevertToSnapshot,
  domainSnapshotCreateXml,
  domainSnapshotDelete,
} from '../../../src/protocols/libvirt/procedures/snapshot.js';
import {
  POOL_STATE,
  connectListAllStoragePools,
  storagePoolGetInfo,
  storagePoolGetXmlDesc,
  storagePoolListAllVolumes,
  storageVolCreateXml,
  storageVolDelete,
} from '../../../src/protocols/libvirt/procedures/storage.js';
import {
  VIR_ERR,
  isNoDomainError,
  libvirtErrorCode,
} from '../../../src/protocols/libvirt/remote-error.js';
import { typedParam, typedParamsToRecord } from '../../../src/protocols/libvirt/remote-types.js';
import {
  connectTcp,
  connectTls,
  connectUnixSocket,
  loadLibvirtPki,
} from '../../../src/protocols/libvirt/transports.js';
import { startLibvirtd, type LibvirtdDaemon } from '../../../src/testing/libvirtd.js';

const TEST_URI = 'test:///default';
let daemon: LibvirtdDaemon;
let client: LibvirtClient;

before(async () => {
  daemon = await startLibvirtd({ tcp: true, tls: true, keepaliveIntervalSeconds: 1 });
  client = await LibvirtClient.connect(() => connectUnixSocket(daemon.socketPath), {
    uri: TEST_URI,
  });
});

after(async () => {
  await client?.close();
  await daemon?.stop();
});

async function rejectsWithLibvirt(
  promise: Promise<unknown>,
  libvirtCode: number,
): Promise<ZenithError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ZenithError, String(error));
    assert.equal(error.code, 'LIBVIRT_RPC_ERROR', error.message);
    assert.equal(libvirtErrorCode(error), libvirtCode, error.message);
    return error;
  }
  assert.fail(`expected libvirt error ${libvirtCode}`);
}

function domainXml(name: string): string {
  return `<domain type='test'><name>${name}</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;
}

test('the host answers with its facts: driver, versions, hostname, node info, capabilities', async () => {
  assert.equal(client.state, 'open');
  assert.equal((await client.call(connectGetType, undefined)).type, 'TEST');
  const { lib_ver } = await client.call(connectGetLibVersion, undefined);
  assert.ok(lib_ver >= 9_000_000n, `libvirt ${lib_ver}`);
  assert.ok((await client.call(connectGetVersion, undefined)).hv_ver > 0);
  assert.ok((await client.call(connectGetHostname, undefined)).hostname.length > 0);
  const node = await client.call(nodeGetInfo, undefined);
  assert.deepEqual(
    { cpus: node.cpus, memoryKiB: node.memory, nodes: node.nodes },
    { cpus: 16, memoryKiB: 3145728, nodes: 2 },
  );
  assert.match(
    (await client.call(connectGetCapabilities, undefined)).capabilities,
    /<capabilities>/,
  );
});

test('the default domain is listed, found by name and UUID, described and running', async () => {
  const { domains } = await client.call(connectListAllDomains, {
    need_results: 1,
    flags: LIST_DOMAINS.active,
  });
  const listed = domains.find((d) => d.name === 'test');
  assert.ok(listed, 'the test driver has a running domain named test');
  const byName = await client.call(domainLookupByName, { name: 'test' });
  const byUuid = await client.call(domainLookupByUuid, { uuid: listed.uuid });
  assert.deepEqual(byName.dom, listed);
  assert.deepEqual(byUuid.dom, listed);
  const { xml } = await client.call(domainGetXmlDesc, { dom: listed, flags: 0 });
  assert.match(xml, /<name>test<\/name>/);
  assert.match(xml, new RegExp(`<uuid>${listed.uuid}</uuid>`));
  const info = await client.call(domainGetInfo, { dom: listed });
  assert.equal(info.state, DOMAIN_STATE.running);
  assert.equal(info.nrVirtCpu, 2);
  assert.ok(info.memory > 0 && info.memory <= info.maxMem);
  assert.equal(
    (await client.call(domainGetState, { dom: listed, flags: 0 })).state,
    DOMAIN_STATE.running,
  );
});

test('an unknown domain is VIR_ERR_NO_DOMAIN, and the connection stays usable', async () => {
  const error = await rejectsWithLibvirt(
    client.call(domainLookupByName, { name: 'no-such-vm' }),
    VIR_ERR.NO_DOMAIN,
  );
  assert.equal(isNoDomainError(error), true);
  assert.equal(error.details.level, 2);
  assert.equal(client.state, 'open');
});

test('define, start, suspend, resume, stop and undefine a domain, with its lifecycle events', async () => {
  const seen: { name: string; event: number; detail: number }[] = [];
  const stopListening = client.onEvent(domainEventLifecycle, ({ msg }) => {
    if (msg.dom.name === 'zen-life')
      seen.push({ name: msg.dom.name, event: msg.event, detail: msg.detail });
  });
  const { callbackID } = await client.call(connectDomainEventCallbackRegisterAny, {
    eventID: DOMAIN_EVENT_ID.lifecycle,
    dom: null,
  });
  const { dom } = await client.call(domainDefineXml, { xml: domainXml('zen-life') });
  assert.equal((await client.call(domainGetInfo, { dom })).state, DOMAIN_STATE.shutoff);
  await client.call(domainCreate, { dom });
  assert.equal((await client.call(domainGetInfo, { dom })).state, DOMAIN_STATE.running);
  await client.call(domainSuspend, { dom });
  assert.equal((await client.call(domainGetState, { dom, flags: 0 })).state, DOMAIN_STATE.paused);
  await client.call(domainResume, { dom });
  await client.call(domainDestroy, { dom });
  await rejectsWithLibvirt(client.call(domainDestroy, { dom }), VIR_ERR.OPERATION_INVALID);
  await client.call(domainUndefineFlags, { dom, flags: 0 });
  await rejectsWithLibvirt(
    client.call(domainLookupByName, { name: 'zen-life' }),
    VIR_ERR.NO_DOMAIN,
  );
  const deadline = Date.now() + 2000;
  while (seen.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(
    seen.map((e) => e.event),
    [
      LIFECYCLE_EVENT.defined,
      LIFECYCLE_EVENT.started,
      LIFECYCLE_EVENT.suspended,
      LIFECYCLE_EVENT.resumed,
      LIFECYCLE_EVENT.stopped,
      LIFECYCLE_EVENT.undefined,
    ],
  );
  stopListening();
  await client.call(connectDomainEventCallbackDeregisterAny, { callbackID });
});

test('a transient domain from createXml is listed as transient and vanishes when destroyed', async () => {
  const { dom } = await client.call(domainCreateXml, {
    xml_desc: domainXml('zen-transient'),
    flags: 0,
  });
  const { domains } = await client.call(connectListAllDomains, {
    need_results: 1,
    flags: LIST_DOMAINS.transient,
  });
  assert.ok(domains.some((d) => d.uuid === dom.uuid));
  await client.call(domainShutdown, { dom });
  await rejectsWithLibvirt(client.call(domainLookupByUuid, { uuid: dom.uuid }), VIR_ERR.NO_DOMAIN);
});

test('snapshots: create, list, revert and delete', async () => {
  const { dom } = await client.call(domainDefineXml, { xml: domainXml('zen-snap') });
  await client.call(domainCreate, { dom });
  const { snap } = await client.call(domainSnapshotCreateXml, {
    dom,
    xml_desc: '<domainsnapshot><name>before-upgrade</name></domainsnapshot>',
    flags: 0,
  });
  assert.equal(snap.name, 'before-upgrade');
  const listed = await client.call(domainListAllSnapshots, { dom, need_results: 1, flags: 0 });
  assert.deepEqual(
    listed.snapshots.map((s) => s.name),
    ['before-upgrade'],
  );
  await client.call(domainDestroy, { dom });
  await client.call(domainRevertToSnapshot, { snap, flags: 0 });
  assert.equal(
    (await client.call(domainGetInfo, { dom })).state,
    DOMAIN_STATE.running,
    'reverted to a running snapshot',
  );
  await client.call(domainSnapshotDelete, { snap, flags: 0 });
  assert.equal(
    (await client.call(domainListAllSnapshots, { dom, need_results: 1, flags: 0 })).ret,
    0,
  );
  await client.call(domainDestroy, { dom });
  await client.call(domainUndefineFlags, { dom, flags: UNDEFINE.snapshotsMetadata });
});

test('networks and storage pools are listed and described; a volume is created and deleted', async () => {
  const { nets } = await client.call(connectListAllNetworks, { need_results: 1, flags: 0 });
  const network = nets.find((n) => n.name === 'default');
  assert.ok(network);
  assert.match((await client.call(networkGetXmlDesc, { net: network, flags: 0 })).xml, /<network/);
  const { pools } = await client.call(connectListAllStoragePools, { need_results: 1, flags: 0 });
  const pool = pools.find((p) => p.name === 'default-pool');
  assert.ok(pool);
  const info = await client.call(storagePoolGetInfo, { pool });
  assert.equal(info.state, POOL_STATE.running);
  assert.ok(info.capacity > 0 && info.allocation + info.available <= info.capacity);
  assert.match(
    (await client.call(storagePoolGetXmlDesc, { pool, flags: 0 })).xml,
    /<name>default-pool<\/name>/,
  );
  const { vol } = await client.call(storageVolCreateXml, {
    pool,
    xml: "<volume><name>zen.img</name><capacity unit='MiB'>8</capacity></volume>",
    flags: 0,
  });
  const listed = await client.call(storagePoolListAllVolumes, { pool, need_results: 1, flags: 0 });
  assert.ok(listed.vols.some((v) => v.name === 'zen.img'));
  await client.call(storageVolDelete, { vol, flags: 0 });
  const after = await client.call(storagePoolListAllVolumes, { pool, need_results: 1, flags: 0 });
  assert.ok(!after.vols.some((v) => v.name === 'zen.img'));
});

test('all-domain stats come back as typed parameters', async () => {
  const { retStats } = await client.call(connectGetAllDomainStats, {
    doms: [],
    stats: DOMAIN_STATS.state,
    flags: 0,
  });
  const record = retStats.find((r) => r.dom.name === 'test');
  assert.ok(record);
  assert.equal(typedParamsToRecord(record.params)['state.state'], DOMAIN_STATE.running);
});

test('migration and job calls are encoded so the daemon decodes them (the test driver then says unsupported)', async () => {
  const { dom } = await client.call(domainLookupByName, { name: 'test' });
  const calls: Promise<unknown>[] = [
    client.call(domainMigratePerform3Params, {
      dom,
      dconnuri: 'qemu+tcp://127.0.0.1/system',
      params: [
        typedParam.string(MIGRATE_PARAM.uri, 'tcp://127.0.0.1'),
        typedParam.ullong(MIGRATE_PARAM.bandwidth, 64n),
      ],
      cookie_in: Buffer.alloc(0),
      flags: MIGRATE.live | MIGRATE.peer2peer,
    }),
    client.call(domainGetJobStats, { dom, flags: 0 }),
    client.call(domainMigrateSetMaxSpeed, { dom, bandwidth: 100n, flags: 0 }),
    client.call(domainMigrateSetMaxDowntime, { dom, downtime: 50n, flags: 0 }),
  ];
  // A payload the daemon could not decode would be VIR_ERR_RPC (39), not VIR_ERR_NO_SUPPORT (3).
  // Every rejection is awaited at once: one at a time, a reply that comes early is unhandled meanwhile.
  await Promise.all(calls.map((call) => rejectsWithLibvirt(call, VIR_ERR.NO_SUPPORT)));
});

test('hundreds of calls in flight at once are all answered, each with its own reply', async () => {
  const { dom } = await client.call(domainLookupByName, { name: 'test' });
  const names = Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? 'test' : `missing-${i}`));
  const results = await Promise.allSettled(
    names.map((name) => client.call(domainLookupByName, { name })),
  );
  results.forEach((result, i) => {
    if (names[i] === 'test') {
      assert.equal(result.status, 'fulfilled');
      assert.deepEqual(result.value.dom, dom);
    } else {
      assert.equal(result.status, 'rejected');
      assert.equal(isNoDomainError(result.reason), true);
    }
  });
  const infos = await Promise.all(
    Array.from({ length: 200 }, () => client.call(domainGetInfo, { dom })),
  );
  assert.ok(infos.every((info) => info.state === DOMAIN_STATE.running));
  assert.equal(client.inFlight, 0);
});

test('keepalive: the daemon’s pings are answered, and our own pings get its pongs', async () => {
  const clock = new ManualClock();
  const pinging = await LibvirtClient.connect(() => connectUnixSocket(daemon.socketPath), {
    uri: TEST_URI,
    clock,
    keepalive: { intervalMs: 5000, maxMissed: 3 },
  });
  try {
    // The daemon (keepalive_interval = 1 s) pings an idle client; a client that did not answer would be dropped.
    const deadline = Date.now() + 5000;
    while (pinging.keepaliveStats.pongsSent < 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok(pinging.keepaliveStats.pongsSent >= 2, JSON.stringify(pinging.keepaliveStats));
    await clock.advance(5000);
    while (pinging.keepaliveStats.pongsReceived < 1 && Date.now() < deadline + 2000) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(pinging.keepaliveStats.pingsSent >= 1, true);
    assert.ok(pinging.keepaliveStats.pongsReceived >= 1, JSON.stringify(pinging.keepaliveStats));
    assert.equal((await pinging.call(connectGetHostname, undefined)).hostname.length > 0, true);
  } finally {
    await pinging.close();
  }
});

test('TCP and TLS with client certificates reach the same daemon', async () => {
  const tcp = await LibvirtClient.connect(() => connectTcp('127.0.0.1', daemon.tcpPort), {
    uri: TEST_URI,
  });
  const tls = await LibvirtClient.connect(
    () =>
      connectTls({
        host: '127.0.0.1',
        port: daemon.tlsPort!,
        pkiDirectory: daemon.clientPkiDirectory!,
      }),
    { uri: TEST_URI },
  );
  try {
    const [overTcp, overTls] = await Promise.all([
      tcp.call(domainLookupByName, { name: 'test' }),
      tls.call(domainLookupByName, { name: 'test' }),
    ]);
    assert.deepEqual(overTcp, overTls);
  } finally {
    await tcp.close();
    await tls.close();
  }
});

test('over TLS, calls written at once are all answered, with no keepalive to wake the daemon', async () => {
  // libvirtd reads a TLS record only as far as the packet it parses: packets sharing a record
  // waited for the next write (a keepalive, 5 s later by default). Here nobody pings, so a call
  // stuck that way would never be answered and would fail with its timeout.
  const quiet = await startLibvirtd({ tls: true, keepaliveIntervalSeconds: -1, virtlogd: false });
  const tls = await LibvirtClient.connect(
    () =>
      connectTls({
        host: '127.0.0.1',
        port: quiet.tlsPort!,
        pkiDirectory: quiet.clientPkiDirectory!,
      }),
    { uri: TEST_URI, keepalive: false, callTimeoutMs: 20_000 },
  );
  try {
    for (let round = 0; round < 3; round++) {
      const names = await Promise.all(
        Array.from({ length: 40 }, () => tls.call(connectGetHostname, undefined)),
      );
      assert.equal(new Set(names.map((n) => n.hostname)).size, 1);
      const [info] = await Promise.all([
        tls
          .call(domainLookupByName, { name: 'test' })
          .then(({ dom }) => tls.call(domainGetInfo, { dom })),
        tls.call(connectGetHostname, undefined),
      ]);
      assert.equal(info.state, DOMAIN_STATE.running);
    }
    assert.equal(tls.inFlight, 0);
  } finally {
    await tls.close();
    await quiet.stop();
  }
});

test('TLS refuses a daemon whose certificate our CA did not sign', async () => {
  const genuine = await loadLibvirtPki(daemon.clientPkiDirectory!);
  const wrongCa = { ...genuine, ca: genuine.cert };
  await assert.rejects(
    LibvirtClient.connect(
      () => connectTls({ host: '127.0.0.1', port: daemon.tlsPort!, credentials: wrongCa }),
      {
        uri: TEST_URI,
      },
    ),
    (error: unknown) => error instanceof ZenithError && error.code === 'LIBVIRT_RPC_CONNECT_FAILED',
  );
});
