import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import { NbdClient, type NbdExtent } from '../../../src/protocols/nbd/client.js';
import { startQemuNbd, type QemuNbd } from '../../../src/testing/qemu-nbd.js';

const MiB = 1024 * 1024;
const KiB = 1024;
const run = (command: string, ...args: string[]) =>
  execFileSync(command, args, { encoding: 'utf8' });
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** What Debian's nbdinfo (libnbd, a real NBD client) maps for a context, as extents. */
function nbdinfoMap(socket: string, context: string): NbdExtent[] {
  const uri = `nbd+unix:///disk0?socket=${socket}`;
  const rows = JSON.parse(run('nbdinfo', `--map=${context}`, '--json', uri)) as {
    offset: number;
    length: number;
    type: number;
  }[];
  return rows.map((row) => ({ offset: row.offset, length: row.length, flags: row.type }));
}

async function collect(iterable: AsyncIterable<NbdExtent>): Promise<NbdExtent[]> {
  const extents: NbdExtent[] = [];
  for await (const extent of iterable) extents.push(extent);
  return extents;
}

function rejectsWith(code: string, detail?: Record<string, unknown>) {
  return (error: unknown) => {
    assert.ok(isZenithError(error), `expected a ZenithError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    for (const [key, value] of Object.entries(detail ?? {}))
      assert.deepEqual(error.details[key], value);
    return true;
  };
}

describe('NBD client against qemu-nbd', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-nbd-'));
  const image = join(dir, 'disk.qcow2');
  const socket = join(dir, 'nbd.sock');
  let server: QemuNbd;
  let raw: Buffer;

  before(async () => {
    // Data before the bitmap began, then writes it tracks: 0xcd at 5 MiB, zeroes over the first write.
    run('qemu-img', 'create', '-q', '-f', 'qcow2', image, '8M');
    run(
      'qemu-io',
      '-f',
      'qcow2',
      '-c',
      'write -P 0xab 1M 64k',
      '-c',
      'write -P 0x11 3M 128k',
      image,
    );
    run('qemu-img', 'bitmap', '--add', '--enable', image, 'b0');
    run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0xcd 5M 64k', '-c', 'write -z 1M 64k', image);
    run('qemu-img', 'convert', '-O', 'raw', image, join(dir, 'disk.raw'));
    raw = readFileSync(join(dir, 'disk.raw'));
    server = await startQemuNbd({ image, socket, readOnly: true, bitmap: 'b0' });
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('reads the export byte for byte as qemu-img sees the image, holes as zeroes, many reads at once', async () => {
    const client = await NbdClient.connect({ path: socket }, { exportName: 'disk0' });
    try {
      assert.equal(client.size, 8 * MiB);
      assert.equal(client.readOnly, true);
      assert.equal(sha256(await client.read(0, client.size)), sha256(raw));
      // Across the edge of a hole and data.
      assert.deepEqual(
        await client.read(3 * MiB - 4 * KiB, 8 * KiB),
        raw.subarray(3 * MiB - 4 * KiB, 3 * MiB + 4 * KiB),
      );
      assert.ok((await client.read(3 * MiB, 4 * KiB)).every((byte) => byte === 0x11));
      // 64 reads in flight at once, each answered by its own cookie.
      const offsets = Array.from(
        { length: 64 },
        (_, index) => (index * 123_457) % (8 * MiB - 64 * KiB),
      );
      const reads = await Promise.all(offsets.map((offset) => client.read(offset, 64 * KiB)));
      reads.forEach((bytes, index) =>
        assert.deepEqual(bytes, raw.subarray(offsets[index], offsets[index]! + 64 * KiB)),
      );
    } finally {
      await client.close();
    }
  });

  test('maps allocation and the dirty bitmap exactly as nbdinfo does; the bitmap holds only the writes after it began', async () => {
    const client = await NbdClient.connect(
      { path: socket },
      { exportName: 'disk0', metaContexts: ['base:allocation', 'qemu:dirty-bitmap:b0'] },
    );
    try {
      assert.deepEqual(client.metaContexts.sort(), ['base:allocation', 'qemu:dirty-bitmap:b0']);
      const allocation = await collect(client.extents('base:allocation'));
      assert.deepEqual(allocation, nbdinfoMap(socket, 'base:allocation'));
      // The data written before the bitmap and not zeroed since: 3 MiB + 128 KiB, and the 0xcd write.
      assert.deepEqual(
        allocation
          .filter((extent) => extent.flags === 0)
          .map(({ offset, length }) => [offset, length]),
        [
          [3 * MiB, 128 * KiB],
          [5 * MiB, 64 * KiB],
        ],
      );
      const dirty = await collect(client.extents('qemu:dirty-bitmap:b0'));
      assert.deepEqual(dirty, nbdinfoMap(socket, 'qemu:dirty-bitmap:b0'));
      assert.deepEqual(
        dirty.filter((extent) => extent.flags === 1).map(({ offset, length }) => [offset, length]),
        [
          [1 * MiB, 64 * KiB],
          [5 * MiB, 64 * KiB],
        ],
      );
      // A range inside the export: extents are clipped to it.
      const part = await collect(
        client.extents('qemu:dirty-bitmap:b0', 5 * MiB + 16 * KiB, 16 * KiB),
      );
      assert.deepEqual(part, [{ offset: 5 * MiB + 16 * KiB, length: 16 * KiB, flags: 1 }]);
    } finally {
      await client.close();
    }
  });

  test('refuses what the export does not allow with coded errors, and stays usable', async () => {
    const client = await NbdClient.connect({ path: socket }, { exportName: 'disk0' });
    try {
      await assert.rejects(
        client.read(8 * MiB - 512, 1024),
        rejectsWith('NBD_COMMAND_FAILED', { error: 'EINVAL' }),
      );
      await assert.rejects(
        client.write(0, Buffer.alloc(512)),
        rejectsWith('NBD_COMMAND_FAILED', { error: 'EPERM' }),
      );
      await assert.rejects(
        client.blockStatus('base:allocation', 0, 4096),
        rejectsWith('NBD_OPTION_REFUSED'),
      );
      assert.deepEqual(await client.read(5 * MiB, 512), raw.subarray(5 * MiB, 5 * MiB + 512));
    } finally {
      await client.close();
    }
    await assert.rejects(
      NbdClient.connect({ path: socket }, { exportName: 'nope' }),
      rejectsWith('NBD_OPTION_REFUSED', { option: 'NBD_OPT_GO', reply: 'NBD_REP_ERR_UNKNOWN' }),
    );
    await assert.rejects(
      NbdClient.connect(
        { path: socket },
        { exportName: 'disk0', metaContexts: ['qemu:dirty-bitmap:b9'] },
      ),
      rejectsWith('NBD_OPTION_REFUSED', { missing: ['qemu:dirty-bitmap:b9'] }),
    );
    await assert.rejects(
      NbdClient.connect({ path: join(dir, 'absent.sock') }),
      rejectsWith('NBD_CONNECT_FAILED'),
    );
  });
});

test('writes, zeroes and flushes a writable export; qemu-io reads back what was written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-nbd-write-'));
  const image = join(dir, 'new.qcow2');
  run('qemu-img', 'create', '-q', '-f', 'qcow2', image, '16M');
  run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x77 8M 2M', image);
  const server = await startQemuNbd({ image, socket: join(dir, 'nbd.sock') });
  try {
    const client = await NbdClient.connect(
      { path: join(dir, 'nbd.sock') },
      { exportName: 'disk0' },
    );
    assert.equal(client.readOnly, false);
    await client.write(0, Buffer.alloc(3 * MiB, 0x5a));
    await client.writeZeroes(8 * MiB, 1 * MiB);
    await client.flush();
    await client.close();
  } finally {
    await server.stop();
  }
  run(
    'qemu-io',
    '-f',
    'qcow2',
    '-c',
    'read -P 0x5a 0 3M',
    '-c',
    'read -P 0 8M 1M',
    '-c',
    'read -P 0x77 9M 1M',
    image,
  );
  const map = JSON.parse(run('qemu-img', 'map', '--output=json', image)) as {
    start: number;
    length: number;
    zero: boolean;
    data: boolean;
  }[];
  const zeroed = map.find((row) => row.start <= 8 * MiB && row.start + row.length > 8 * MiB);
  assert.equal(zeroed?.data, false, 'the zeroed range is stored as zeroes, not as written bytes');
  rmSync(dir, { recursive: true, force: true });
});

test('requests in flight fail with NBD_CLOSED when qemu-nbd is killed, and nothing goes unhandled', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-nbd-kill-'));
  const image = join(dir, 'disk.qcow2');
  run('qemu-img', 'create', '-q', '-f', 'qcow2', image, '64M');
  const server = await startQemuNbd({ image, socket: join(dir, 'nbd.sock'), readOnly: true });
  const client = await NbdClient.connect({ path: join(dir, 'nbd.sock') }, { exportName: 'disk0' });
  // Each read's outcome is awaited from the start, as a caller does: the kill rejects them at once.
  const reads = Promise.allSettled(
    Array.from({ length: 32 }, (_, index) => client.read(index * 2 * MiB, 2 * MiB)),
  );
  await server.stop('SIGKILL');
  const settled = await reads;
  for (const result of settled) {
    // A read answered before the kill holds the image's bytes (zeroes); every other fails closed.
    if (result.status === 'fulfilled')
      assert.ok(result.value.length === 2 * MiB && result.value.every((byte) => byte === 0));
    else rejectsWith('NBD_CLOSED')(result.reason);
  }
  await assert.rejects(client.read(0, 512), rejectsWith('NBD_CLOSED'));
  await client.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A peer that speaks just enough NBD to misbehave in one chosen way. */
async function scriptedPeer(
  behave: (socket: Socket) => void,
): Promise<{ path: string; close: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-nbd-peer-'));
  const path = join(dir, 'peer.sock');
  const server = createServer(behave);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    close: () => {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const greeting = () =>
  Buffer.concat([Buffer.from('NBDMAGICIHAVEOPT', 'latin1'), Buffer.from([0, 3])]);

function optionReply(option: number, type: number, data = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(20);
  header.writeBigUInt64BE(0x3e889045565a9n, 0);
  header.writeUInt32BE(option, 8);
  header.writeUInt32BE(type, 12);
  header.writeUInt32BE(data.length, 16);
  return Buffer.concat([header, data]);
}

/** Answers every option with ACK (NBD_OPT_GO with an 8 MiB read-only export first), then hands requests to `onRequest`. */
function negotiatingPeer(onRequest: (socket: Socket, request: Buffer) => void) {
  return (socket: Socket) => {
    socket.write(greeting());
    let buffered = Buffer.alloc(4); // the client flags come first
    let negotiating = true;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 8 && buffered.subarray(0, 4).equals(Buffer.alloc(4)))
        buffered = buffered.subarray(8);
      while (negotiating && buffered.length >= 16) {
        const option = buffered.readUInt32BE(8);
        const length = buffered.readUInt32BE(12);
        if (buffered.length < 16 + length) return;
        buffered = buffered.subarray(16 + length);
        if (option === 7) {
          const info = Buffer.alloc(12);
          info.writeUInt16BE(0, 0);
          info.writeBigUInt64BE(BigInt(8 * MiB), 2);
          info.writeUInt16BE(1 | 2, 10);
          socket.write(optionReply(option, 3, info));
          negotiating = false;
        }
        socket.write(optionReply(option, 1));
      }
      while (!negotiating && buffered.length >= 28) {
        onRequest(socket, buffered.subarray(0, 28));
        buffered = buffered.subarray(28);
      }
    });
  };
}

test('a peer that breaks the protocol gets a coded error, never a crash or a hang', async () => {
  const notNbd = await scriptedPeer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  await assert.rejects(NbdClient.connect({ path: notNbd.path }), rejectsWith('NBD_PROTOCOL_ERROR'));
  notNbd.close();

  const silent = await scriptedPeer((socket) => socket.write(greeting()));
  await assert.rejects(
    NbdClient.connect({ path: silent.path }, { handshakeTimeoutMs: 300 }),
    rejectsWith('NBD_CONNECT_FAILED'),
  );
  silent.close();

  // A structured error chunk for a read: NBD_COMMAND_FAILED with the errno and the server's message.
  const failing = await scriptedPeer(
    negotiatingPeer((socket, request) => {
      const message = Buffer.from('medium error');
      const chunk = Buffer.alloc(20 + 6 + message.length);
      chunk.writeUInt32BE(0x668e33ef, 0);
      chunk.writeUInt16BE(1, 4);
      chunk.writeUInt16BE((1 << 15) + 1, 6);
      request.copy(chunk, 8, 8, 16);
      chunk.writeUInt32BE(6 + message.length, 16);
      chunk.writeUInt32BE(5, 20);
      chunk.writeUInt16BE(message.length, 24);
      message.copy(chunk, 26);
      socket.write(chunk);
    }),
  );
  const client = await NbdClient.connect({ path: failing.path });
  assert.equal(client.size, 8 * MiB);
  await assert.rejects(
    client.read(0, 4096),
    rejectsWith('NBD_COMMAND_FAILED', { error: 'EIO', message: 'medium error' }),
  );
  client.destroy();
  failing.close();

  // A reply to a request never made closes the connection with NBD_PROTOCOL_ERROR.
  const confused = await scriptedPeer(
    negotiatingPeer((socket) => {
      const reply = Buffer.alloc(16);
      reply.writeUInt32BE(0x67446698, 0);
      reply.writeBigUInt64BE(999n, 8);
      socket.write(reply);
    }),
  );
  const confusedClient = await NbdClient.connect({ path: confused.path });
  await assert.rejects(confusedClient.read(0, 4096), rejectsWith('NBD_PROTOCOL_ERROR'));
  confused.close();
});
