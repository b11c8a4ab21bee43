import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZenithError } from '../../../src/core/errors.js';
import { xdrStruct } from '../../../src/protocols/xdr/xdr-types.js';
import {
  LIBVIRT_PROGRAM,
  MESSAGE_STATUS,
  MESSAGE_TYPE,
  decodePacket,
  encodePacket,
  encodeRawPacket,
  type PacketHeader,
} from '../../../src/protocols/libvirt/packet.js';
import { PacketSplitter } from '../../../src/protocols/libvirt/packet-splitter.js';
import {
  VIR_ERR,
  isNoDomainError,
  isOperationInvalidError,
  libvirtError,
  remoteError,
} from '../../../src/protocols/libvirt/remote-error.js';
import {
  remoteNonnullString,
  remoteString,
  typedParam,
  typedParamsToRecord,
  remoteTypedParams,
} from '../../../src/protocols/libvirt/remote-types.js';
import { domainLookupByName } from '../../../src/protocols/libvirt/procedures/domain.js';
import { decodeXdr, encodeXdr } from '../../../src/protocols/xdr/xdr-types.js';

const call: PacketHeader = {
  program: LIBVIRT_PROGRAM.remote,
  version: 1,
  procedure: 23,
  type: MESSAGE_TYPE.call,
  serial: 7,
  status: MESSAGE_STATUS.ok,
};

function lookupPacket(name: string, serial = 7): Buffer {
  return encodePacket({ ...call, serial }, (w) => domainLookupByName.args.encode(w, { name }));
}

test('a call packet is length (counting itself), six header words, then the XDR payload', () => {
  const packet = lookupPacket('test');
  assert.equal(
    packet.toString('hex'),
    [
      '00000024', // 36 bytes in all
      '20008086', // remote program
      '00000001', // version
      '00000017', // procedure 23
      '00000000', // CALL
      '00000007', // serial
      '00000000', // OK
      '00000004',
      '74657374', // "test"
    ].join(''),
  );
  const decoded = decodePacket(packet);
  assert.deepEqual(decoded.header, call);
  assert.deepEqual(decodeXdr(domainLookupByName.args, decoded.payload), { name: 'test' });
});

test('raw stream packets carry their bytes as they are', () => {
  const data = Buffer.from('abc');
  const packet = encodeRawPacket(
    { ...call, type: MESSAGE_TYPE.stream, status: MESSAGE_STATUS.continue },
    data,
  );
  assert.equal(packet.length, 28 + 3);
  assert.equal(decodePacket(packet).payload.toString(), 'abc');
});

test('the splitter finds the same packets however the bytes are cut', () => {
  const stream = Buffer.concat([
    lookupPacket('alpha', 1),
    lookupPacket('b', 2),
    lookupPacket('gamma-delta', 3),
  ]);
  const expected = [1, 2, 3];
  for (let first = 0; first <= stream.length; first++) {
    for (const second of [
      first,
      Math.min(stream.length, first + 1),
      Math.min(stream.length, first + 29),
    ]) {
      const splitter = new PacketSplitter();
      const serials = [
        ...splitter.push(stream.subarray(0, first)),
        ...splitter.push(stream.subarray(first, second)),
        ...splitter.push(stream.subarray(second)),
      ].map((p) => p.header.serial);
      assert.deepEqual(serials, expected, `cut at ${first} and ${second}`);
      assert.equal(splitter.buffered, 0);
    }
  }
});

test('the splitter takes a byte at a time', () => {
  const stream = Buffer.concat([lookupPacket('one', 1), lookupPacket('two', 2)]);
  const splitter = new PacketSplitter();
  const names: string[] = [];
  for (const byte of stream) {
    for (const packet of splitter.push(Buffer.from([byte]))) {
      names.push(decodeXdr(domainLookupByName.args, packet.payload).name);
    }
  }
  assert.deepEqual(names, ['one', 'two']);
});

function assertProtocolError(fn: () => unknown): void {
  assert.throws(
    fn,
    (error: unknown) => error instanceof ZenithError && error.code === 'LIBVIRT_RPC_PROTOCOL_ERROR',
  );
}

test('an oversized length is refused before its bytes arrive, and the splitter stays failed', () => {
  const splitter = new PacketSplitter(1024);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(1024 + 4 + 1, 0);
  assertProtocolError(() => splitter.push(header));
  assertProtocolError(() => splitter.push(lookupPacket('after')));
});

test('a length shorter than a header, an unknown type or status are protocol errors', () => {
  assertProtocolError(() => new PacketSplitter().push(Buffer.from('0000000800000000', 'hex')));
  const badType = lookupPacket('x');
  badType.writeInt32BE(9, 16);
  assertProtocolError(() => new PacketSplitter().push(badType));
  const badStatus = lookupPacket('x');
  badStatus.writeInt32BE(5, 24);
  assertProtocolError(() => new PacketSplitter().push(badStatus));
  assertProtocolError(() =>
    new PacketSplitter().push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')),
  );
});

const noDomain = {
  code: VIR_ERR.NO_DOMAIN,
  domain: 12,
  message: "Domain not found: no domain with matching name 'nope'",
  level: 2,
  dom: null,
  str1: 'Domain not found',
  str2: "no domain with matching name 'nope'",
  str3: null,
  int1: -1,
  int2: -1,
  net: null,
};

test('remote_error decodes into LIBVIRT_RPC_ERROR with libvirt’s own numbers', () => {
  const decoded = decodeXdr(remoteError, encodeXdr(remoteError, noDomain));
  const error = libvirtError(decoded, 'domainLookupByName');
  assert.equal(error.code, 'LIBVIRT_RPC_ERROR');
  assert.deepEqual(
    { code: error.details.code, domain: error.details.domain, level: error.details.level },
    { code: 42, domain: 12, level: 2 },
  );
  assert.equal(error.details.message, noDomain.message);
  assert.equal(isNoDomainError(error), true);
  assert.equal(isOperationInvalidError(error), false);
  assert.equal(isNoDomainError(new ZenithError('ZEN_NOT_FOUND', 'Domain not found')), false);
  assert.equal(
    isOperationInvalidError(libvirtError({ ...noDomain, code: VIR_ERR.OPERATION_INVALID })),
    true,
  );
});

test('every truncation of a remote_error is a coded decode error', () => {
  const bytes = encodeXdr(remoteError, noDomain);
  for (let cut = 0; cut < bytes.length; cut++) {
    assert.throws(
      () => decodeXdr(remoteError, bytes.subarray(0, cut)),
      (error: unknown) => error instanceof ZenithError && error.code === 'XDR_DECODE_ERROR',
    );
  }
});

test('typed parameters round-trip every kind and read as a record', () => {
  const params = [
    typedParam.int('i', -3),
    typedParam.uint('u', 3),
    typedParam.llong('l', -(1n << 40n)),
    typedParam.ullong('bandwidth', 1n << 50n),
    typedParam.double('d', 0.5),
    typedParam.boolean('b', true),
    typedParam.string('migrate_uri', 'tcp://127.0.0.1'),
  ];
  const decoded = decodeXdr(remoteTypedParams, encodeXdr(remoteTypedParams, params));
  assert.deepEqual(decoded, params);
  assert.deepEqual(typedParamsToRecord(decoded), {
    i: -3,
    u: 3,
    l: -(1n << 40n),
    bandwidth: 1n << 50n,
    d: 0.5,
    b: true,
    migrate_uri: 'tcp://127.0.0.1',
  });
});

test('remote strings: nonnull and optional forms', () => {
  const both = xdrStruct({ a: remoteNonnullString, b: remoteString });
  assert.deepEqual(decodeXdr(both, encodeXdr(both, { a: '', b: null })), { a: '', b: null });
});
