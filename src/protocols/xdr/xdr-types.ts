/**
 * Declarative XDR (RFC 4506) types: each is a value that knows how to encode and
 * decode itself, so messages are described as data, e.g.
 *
 *   const domain = xdrStruct({ name: xdrString(1024), uuid: xdrFixedOpaque(16), id: xdrInt });
 *
 * Struct fields are encoded in the order they are declared.
 */
import { xdrDecodeError, xdrEncodeError } from './xdr-error.js';
import { XdrReader } from './xdr-reader.js';
import { XdrWriter } from './xdr-writer.js';

export interface XdrType<T> {
  /** For messages: what was being decoded when something went wrong. */
  readonly name: string;
  encode(writer: XdrWriter, value: T): void;
  decode(reader: XdrReader): T;
}

/** The TypeScript type a declared XDR type encodes and decodes. */
export type XdrValue<C> = C extends XdrType<infer T> ? T : never;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export const xdrVoid: XdrType<void> = {
  name: 'void',
  encode: () => undefined,
  decode: () => undefined,
};

export const xdrInt: XdrType<number> = {
  name: 'int',
  encode: (w, v) => w.writeInt(v),
  decode: (r) => r.readInt(),
};

export const xdrUint: XdrType<number> = {
  name: 'unsigned int',
  encode: (w, v) => w.writeUint(v),
  decode: (r) => r.readUint(),
};

export const xdrHyper: XdrType<bigint> = {
  name: 'hyper',
  encode: (w, v) => w.writeHyper(v),
  decode: (r) => r.readHyper(),
};

export const xdrUhyper: XdrType<bigint> = {
  name: 'unsigned hyper',
  encode: (w, v) => w.writeUhyper(v),
  decode: (r) => r.readUhyper(),
};

/** An unsigned hyper carried as a JS number; decoding a value above 2^53-1 is an error, not a silent rounding. */
export const xdrUhyperNumber: XdrType<number> = {
  name: 'unsigned hyper (number)',
  encode: (w, v) => {
    if (!Number.isSafeInteger(v)) throw xdrEncodeError(`not a safe integer: ${v}`, { value: v });
    w.writeUhyper(BigInt(v));
  },
  decode: (r) => {
    const value = r.readUhyper();
    if (value > MAX_SAFE) {
      throw xdrDecodeError(`unsigned hyper ${value} does not fit a JS number`, {
        value: value.toString(),
      });
    }
    return Number(value);
  },
};

export const xdrBool: XdrType<boolean> = {
  name: 'bool',
  encode: (w, v) => w.writeInt(v ? 1 : 0),
  decode: (r) => {
    const value = r.readInt();
    if (value !== 0 && value !== 1) throw xdrDecodeError(`bool must be 0 or 1, got ${value}`);
    return value === 1;
  },
};

export const xdrDouble: XdrType<number> = {
  name: 'double',
  encode: (w, v) => w.writeDouble(v),
  decode: (r) => r.readDouble(),
};

export const xdrFloat: XdrType<number> = {
  name: 'float',
  encode: (w, v) => w.writeFloat(v),
  decode: (r) => r.readFloat(),
};

/** `opaque name[n]`: exactly n bytes, padded to 4. */
export function xdrFixedOpaque(length: number): XdrType<Buffer> {
  return {
    name: `opaque[${length}]`,
    encode: (w, v) => {
      if (v.length !== length) {
        throw xdrEncodeError(`opaque[${length}] given ${v.length} bytes`, { length: v.length });
      }
      w.writePadded(v);
    },
    decode: (r) => r.readPadded(length),
  };
}

function readLength(r: XdrReader, max: number, what: string, minBytesPerItem: number): number {
  const length = r.readUint();
  if (length > max)
    throw xdrDecodeError(`${what} length ${length} exceeds maximum ${max}`, { length, max });
  if (length * minBytesPerItem > r.remaining) {
    throw xdrDecodeError(
      `truncated XDR data: ${what} of ${length} items cannot fit in ${r.remaining} bytes`,
      {
        length,
        remaining: r.remaining,
      },
    );
  }
  return length;
}

/** `opaque name<max>`: a length-prefixed byte string. */
export function xdrOpaque(max = 0xffffffff): XdrType<Buffer> {
  return {
    name: `opaque<${max}>`,
    encode: (w, v) => {
      if (v.length > max) throw xdrEncodeError(`opaque of ${v.length} bytes exceeds ${max}`);
      w.writeUint(v.length);
      w.writePadded(v);
    },
    decode: (r) => r.readPadded(readLength(r, max, 'opaque', 1)),
  };
}

/** `string name<max>`: UTF-8, length in bytes. */
export function xdrString(max = 0xffffffff): XdrType<string> {
  return {
    name: `string<${max}>`,
    encode: (w, v) => {
      const bytes = Buffer.from(v, 'utf8');
      if (bytes.length > max) {
        throw xdrEncodeError(`string of ${bytes.length} bytes exceeds ${max}`, {
          length: bytes.length,
          max,
        });
      }
      w.writeUint(bytes.length);
      w.writePadded(bytes);
    },
    decode: (r) => r.readPadded(readLength(r, max, 'string', 1)).toString('utf8'),
  };
}

/** `T *name`: a presence flag then the value; null when absent. */
export function xdrOptional<T>(type: XdrType<T>): XdrType<T | null> {
  return {
    name: `${type.name}*`,
    encode: (w, v) => {
      if (v === null || v === undefined) {
        w.writeUint(0);
      } else {
        w.writeUint(1);
        type.encode(w, v);
      }
    },
    decode: (r) => {
      const present = r.readUint();
      if (present === 0) return null;
      if (present !== 1) throw xdrDecodeError(`optional flag must be 0 or 1, got ${present}`);
      return type.decode(r);
    },
  };
}

/** `T name<max>`: a length-prefixed array. */
export function xdrArray<T>(type: XdrType<T>, max = 0xffffffff): XdrType<T[]> {
  return {
    name: `${type.name}<${max}>`,
    encode: (w, v) => {
      if (v.length > max) throw xdrEncodeError(`array of ${v.length} items exceeds ${max}`);
      w.writeUint(v.length);
      for (const item of v) type.encode(w, item);
    },
    decode: (r) => {
      const length = readLength(r, max, `array of ${type.name}`, type === xdrVoid ? 0 : 4);
      const items = new Array<T>(length);
      for (let i = 0; i < length; i++) items[i] = type.decode(r);
      return items;
    },
  };
}

/** `T name[n]`: exactly n items, no length prefix. */
export function xdrFixedArray<T>(type: XdrType<T>, length: number): XdrType<T[]> {
  return {
    name: `${type.name}[${length}]`,
    encode: (w, v) => {
      if (v.length !== length)
        throw xdrEncodeError(`${type.name}[${length}] given ${v.length} items`);
      for (const item of v) type.encode(w, item);
    },
    decode: (r) => {
      if (length * 4 > r.remaining) {
        throw xdrDecodeError(`truncated XDR data: ${type.name}[${length}]`, {
          remaining: r.remaining,
        });
      }
      const items = new Array<T>(length);
      for (let i = 0; i < length; i++) items[i] = type.decode(r);
      return items;
    },
  };
}

/**
 * `char name[n]` as a C string: XDR gives every char 4 bytes, so this is n ints;
 * the text ends at the first NUL.
 */
export function xdrCharArrayString(length: number): XdrType<string> {
  const chars = xdrFixedArray(xdrInt, length);
  return {
    name: `char[${length}]`,
    encode: (w, v) => {
      const bytes = Buffer.from(v, 'utf8');
      if (bytes.length > length)
        throw xdrEncodeError(`char[${length}] given ${bytes.length} bytes`);
      const codes = new Array<number>(length).fill(0);
      for (let i = 0; i < bytes.length; i++) codes[i] = (bytes[i]! << 24) >> 24;
      chars.encode(w, codes);
    },
    decode: (r) => {
      const codes = chars.decode(r);
      const end = codes.indexOf(0);
      return Buffer.from(codes.slice(0, end === -1 ? length : end).map((c) => c & 0xff)).toString(
        'utf8',
      );
    },
  };
}

type StructFields = Record<string, XdrType<unknown>>;
export type StructValue<F extends StructFields> = { [K in keyof F]: XdrValue<F[K]> };

/** `struct { ... }`: fields encoded in declaration order. */
export function xdrStruct<F extends StructFields>(
  fields: F,
  name = 'struct',
): XdrType<StructValue<F>> {
  const entries = Object.entries(fields);
  return {
    name,
    encode: (w, v) => {
      for (const [key, type] of entries) {
        const value = (v as Record<string, unknown>)[key];
        if (value === undefined && type !== (xdrVoid as XdrType<unknown>)) {
          throw xdrEncodeError(`${name}.${key} is missing`, { field: key });
        }
        type.encode(w, value);
      }
    },
    decode: (r) => {
      const value: Record<string, unknown> = {};
      for (const [key, type] of entries) value[key] = type.decode(r);
      return value as StructValue<F>;
    },
  };
}

/** `enum { ... }`: an int restricted to the declared values. */
export function xdrEnum<const E extends Record<string, number>>(
  values: E,
  name = 'enum',
): XdrType<E[keyof E]> {
  const allowed = new Set<number>(Object.values(values));
  return {
    name,
    encode: (w, v) => {
      if (!allowed.has(v)) throw xdrEncodeError(`${v} is not a value of ${name}`);
      w.writeInt(v);
    },
    decode: (r) => {
      const value = r.readInt();
      if (!allowed.has(value))
        throw xdrDecodeError(`${value} is not a value of ${name}`, { value });
      return value as E[keyof E];
    },
  };
}

type UnionArms = Record<number, XdrType<unknown>>;
export type UnionValue<A extends UnionArms> = {
  [K in keyof A & number]: { kind: K; value: XdrValue<A[K]> };
}[keyof A & number];

/** `union switch (int kind) { case ...: }`: the discriminant chooses the arm; an undeclared one is an error. */
export function xdrUnion<A extends UnionArms>(arms: A, name = 'union'): XdrType<UnionValue<A>> {
  return {
    name,
    encode: (w, v) => {
      const arm = arms[v.kind];
      if (!arm) throw xdrEncodeError(`${name} has no arm ${v.kind}`);
      w.writeInt(v.kind);
      arm.encode(w, v.value);
    },
    decode: (r) => {
      const kind = r.readInt();
      const arm = arms[kind];
      if (!arm) throw xdrDecodeError(`${name} has no arm ${kind}`, { kind });
      return { kind, value: arm.decode(r) } as UnionValue<A>;
    },
  };
}

/** A type whose wire form is `base` but whose value is mapped (e.g. bytes to a UUID string). */
export function xdrMapped<W, T>(
  base: XdrType<W>,
  fromWire: (wire: W) => T,
  toWire: (value: T) => W,
  name = base.name,
): XdrType<T> {
  return {
    name,
    encode: (w, v) => base.encode(w, toWire(v)),
    decode: (r) => fromWire(base.decode(r)),
  };
}

/** Encodes one value to a fresh buffer. */
export function encodeXdr<T>(type: XdrType<T>, value: T): Buffer {
  const writer = new XdrWriter();
  type.encode(writer, value);
  return writer.toBuffer();
}

/** Decodes exactly one value: trailing bytes are an error. */
export function decodeXdr<T>(type: XdrType<T>, bytes: Uint8Array): T {
  const reader = new XdrReader(bytes);
  const value = type.decode(reader);
  reader.expectEnd(type.name);
  return value;
}
