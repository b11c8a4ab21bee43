/**
 * Volume upload and download streams against a real libvirtd, through the
 * storage driver of qemu:///system (a directory pool in the daemon's own
 * temporary directory; no QEMU domain is started).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { LibvirtClient } from '../../../src/protocols/libvirt/libvirt-client.js';
import { connectGetHostname } from '../../../src/protocols/libvirt/procedures/connect.js';
import {
  storagePoolCreateXml,
  storagePoolDestroy,
  storageVolCreateXml,
  storageVolDelete,
  storageVolDownload,
  storageVolGetInfo,
  storageVolUpload,
} from '../../../src/protocols/libvirt/procedures/storage.js';
import type { StoragePoolRef, StorageVolRef } from '../../../src/protocols/libvirt/remote-types.js';
import { connectUnixSocket } from '../../../src/protocols/libvirt/transports.js';
import { startLibvirtd, type LibvirtdDaemon } from '../../../src/testing/libvirtd.js';

const MiB = 1024 * 1024;
let daemon: LibvirtdDaemon;
let client: LibvirtClient;
let pool: StoragePoolRef;

before(async () => {
  daemon = await startLibvirtd();
  client = await LibvirtClient.connect(() => connectUnixSocket(daemon.socketPath), {
    uri: 'qemu:///system',
  });
  const path = join(daemon.root, 'pool');
  await mkdir(path);
  ({ pool } = await client.call(storagePoolCreateXml, {
    xml: `<pool type='dir'><name>zen-pool</name><target><path>${path}</path></target></pool>`,
    flags: 0,
  }));
});

after(async () => {
  if (pool) await client.call(storagePoolDestroy, { pool }).catch(() => undefined);
  await client?.close();
  await daemon?.stop();
});

async function createVolume(name: string, bytes: number): Promise<StorageVolRef> {
  const { vol } = await client.call(storageVolCreateXml, {
    pool,
    xml: `<volume><name>${name}</name><capacity unit='bytes'>${bytes}</capacity><target><format type='raw'/></target></volume>`,
    flags: 0,
  });
  return vol;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The most bytes the download stream held unread at any time, from the last download(). */
let maxBuffered = 0;

async function download(vol: StorageVolRef, offset = 0, length = 0, slow = false): Promise<Buffer> {
  const stream = await client.openStream(storageVolDownload, { vol, offset, length, flags: 0 });
  const chunks: Buffer[] = [];
  maxBuffered = 0;
  await pipeline(
    stream,
    new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        maxBuffered = Math.max(maxBuffered, stream.readableLength);
        if (slow) setTimeout(callback, 1);
        else callback();
      },
    }),
  );
  return Buffer.concat(chunks);
}

test('a few MiB uploaded through a stream download back byte for byte', async () => {
  const data = randomBytes(5 * MiB + 123);
  const vol = await createVolume('roundtrip.img', data.length);
  const upload = await client.openStream(storageVolUpload, { vol, offset: 0, length: 0, flags: 0 });
  await pipeline(Readable.from(chunksOf(data, 300 * 1024)), upload);
  const info = await client.call(storageVolGetInfo, { vol });
  assert.equal(info.capacity, data.length);
  const back = await download(vol);
  assert.equal(back.length, data.length);
  assert.equal(sha256(back), sha256(data));
  assert.equal(client.openStreams, 0, 'both streams released their serials');
  assert.equal(client.state, 'open');
  await client.call(storageVolDelete, { vol, flags: 0 });
});

test('a range of a volume downloads exactly that range', async () => {
  const data = randomBytes(2 * MiB);
  const vol = await createVolume('range.img', data.length);
  const upload = await client.openStream(storageVolUpload, { vol, offset: 0, length: 0, flags: 0 });
  await pipeline(Readable.from([data]), upload);
  const part = await download(vol, MiB + 17, 4096);
  assert.ok(part.equals(data.subarray(MiB + 17, MiB + 17 + 4096)));
  await client.call(storageVolDelete, { vol, flags: 0 });
});

test('a slow reader holds the download back and still gets every byte; calls keep working', async () => {
  const data = randomBytes(4 * MiB);
  const vol = await createVolume('slow.img', data.length);
  const upload = await client.openStream(storageVolUpload, { vol, offset: 0, length: 0, flags: 0 });
  await pipeline(Readable.from([data]), upload);
  const back = await download(vol, 0, 0, true);
  assert.equal(sha256(back), sha256(data));
  assert.ok(
    maxBuffered < MiB,
    `the client held ${maxBuffered} unread bytes: it must stop reading instead`,
  );
  assert.ok((await client.call(connectGetHostname, undefined)).hostname.length > 0);
  await client.call(storageVolDelete, { vol, flags: 0 });
});

test('calls made during an upload are answered while the upload goes on', async () => {
  const data = randomBytes(6 * MiB);
  const vol = await createVolume('busy.img', data.length);
  const upload = await client.openStream(storageVolUpload, { vol, offset: 0, length: 0, flags: 0 });
  const uploading = pipeline(Readable.from(chunksOf(data, 256 * 1024)), upload);
  const answers = await Promise.all(
    Array.from({ length: 20 }, () => client.call(connectGetHostname, undefined)),
  );
  await uploading;
  assert.equal(answers.length, 20);
  assert.equal(sha256(await download(vol)), sha256(data));
  await client.call(storageVolDelete, { vol, flags: 0 });
});

test('an upload aborted halfway leaves the connection usable', async () => {
  const vol = await createVolume('aborted.img', 4 * MiB);
  const upload = await client.openStream(storageVolUpload, { vol, offset: 0, length: 0, flags: 0 });
  await new Promise<void>((resolve, reject) =>
    upload.write(randomBytes(MiB), (e) => (e ? reject(e) : resolve())),
  );
  upload.destroy();
  assert.ok((await client.call(connectGetHostname, undefined)).hostname.length > 0);
  assert.equal(client.state, 'open');
  assert.equal(client.openStreams, 0);
  await client.call(storageVolDelete, { vol, flags: 0 });
});

function* chunksOf(data: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size)
    yield data.subarray(offset, offset + size);
}
