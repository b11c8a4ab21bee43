/**
 * Values of the VIM API as plain data. Requests are written from ordered
 * objects (vSphere checks the schema's element order, so fields are written
 * in insertion order); replies are read without a schema: a field repeated in
 * the reply becomes an array, a single one does not (use `list()`), and leaf
 * values without an xsi:type stay text (use `num()`, `bool()`).
 */
import { XSD, type XmlElement } from './xml-tree.js';

/** A managed object reference: the type and the server's id of an object. */
export class MoRef {
  constructor(
    readonly type: string,
    readonly value: string,
  ) {}

  toString(): string {
    return `${this.type}:${this.value}`;
  }

  equals(other: MoRef | undefined): boolean {
    return other !== undefined && other.type === this.type && other.value === this.value;
  }
}

export function moRef(type: string, value: string): MoRef {
  return new MoRef(type, value);
}

/** A leaf written with an explicit xsi:type (where the schema says anyType). */
export class TypedLeaf {
  constructor(
    readonly xsiType: string,
    readonly value: string,
  ) {}
}

export type VimArg =
  string | number | boolean | MoRef | TypedLeaf | VimArgObject | VimArg[] | undefined;
export interface VimArgObject {
  /** Written as xsi:type: needed where the value is a subtype of the declared type. */
  readonly $type?: string;
  readonly [field: string]: VimArg;
}

export type VimValue = string | number | boolean | MoRef | VimObject | VimValue[];
export interface VimObject {
  readonly [field: string]: VimValue | undefined;
}

const numericXsd = new Set(['int', 'long', 'short', 'byte', 'float', 'double']);
const numericArrays = new Set([
  'ArrayOfInt',
  'ArrayOfLong',
  'ArrayOfShort',
  'ArrayOfByte',
  'ArrayOfFloat',
  'ArrayOfDouble',
]);

/** Reads one element of a reply as a value (see the file comment for the rules). */
export function decodeValue(element: XmlElement): VimValue {
  const type = element.xsiType;
  if (type) {
    if (type.ns === XSD) {
      if (numericXsd.has(type.local)) return Number(element.text);
      if (type.local === 'boolean') return element.text === 'true' || element.text === '1';
      return element.text;
    }
    if (type.local === 'ManagedObjectReference')
      return new MoRef(element.attrs.type ?? '', element.text.trim());
    if (type.local.startsWith('ArrayOf')) {
      if (numericArrays.has(type.local)) return element.children.map((c) => Number(c.text));
      if (type.local === 'ArrayOfBoolean') return element.children.map((c) => c.text === 'true');
      return element.children.map(decodeValue);
    }
  }
  if (element.children.length === 0) {
    if (element.attrs.type !== undefined) return new MoRef(element.attrs.type, element.text.trim());
    return element.text;
  }
  const object: Record<string, VimValue> = {};
  if (type) object.$type = type.local;
  for (const child of element.children) {
    const value = decodeValue(child);
    const existing = object[child.name];
    if (existing === undefined) object[child.name] = value;
    else if (Array.isArray(existing) && repeated.has(existing)) existing.push(value);
    else {
      const array = [existing, value];
      repeated.add(array);
      object[child.name] = array;
    }
  }
  return object;
}

/** Arrays made from repeated fields (as opposed to ArrayOf… values held in a field). */
const repeated = new WeakSet<VimValue[]>();

/** A field that may hold one value, several, or none, as a list. */
export function list(value: VimValue | undefined): VimValue[] {
  if (value === undefined || value === '') return [];
  return Array.isArray(value) ? value : [value];
}

export function str(value: VimValue | undefined): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

export function num(value: VimValue | undefined): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '') {
    const parsed = Number(value);
    return Number.isFinite(parsed) ? parsed : undefined;
  }
  return undefined;
}

export function bool(value: VimValue | undefined): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  return undefined;
}

export function obj(value: VimValue | undefined): VimObject | undefined {
  return typeof value === 'object' && !Array.isArray(value) && !(value instanceof MoRef)
    ? value
    : undefined;
}

export function ref(value: VimValue | undefined): MoRef | undefined {
  return value instanceof MoRef ? value : undefined;
}

export function refs(value: VimValue | undefined): MoRef[] {
  return list(value).filter((v): v is MoRef => v instanceof MoRef);
}

export function escapeXml(text: string): string {
  let out = '';
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    let entity: string | undefined;
    if (code === 38) entity = '&amp;';
    else if (code === 60) entity = '&lt;';
    else if (code === 62) entity = '&gt;';
    else if (code === 34) entity = '&quot;';
    else if (code === 39) entity = '&apos;';
    else if (code < 32 && code !== 9 && code !== 10 && code !== 13) entity = '';
    if (entity !== undefined) {
      out += text.slice(last, i) + entity;
      last = i + 1;
    }
  }
  return last === 0 ? text : out + text.slice(last);
}

/** Writes `<name>value</name>` (repeated for arrays, nothing for undefined). */
export function encodeArg(name: string, value: VimArg, out: string[]): void {
  if (value === undefined) return;
  if (Array.isArray(value)) {
    for (const item of value) encodeArg(name, item, out);
    return;
  }
  if (value instanceof MoRef) {
    out.push(`<${name} type="${escapeXml(value.type)}">${escapeXml(value.value)}</${name}>`);
    return;
  }
  if (value instanceof TypedLeaf) {
    out.push(`<${name} xsi:type="${escapeXml(value.xsiType)}">${escapeXml(value.value)}</${name}>`);
    return;
  }
  if (typeof value === 'object') {
    out.push(value.$type ? `<${name} xsi:type="${escapeXml(value.$type)}">` : `<${name}>`);
    for (const [field, fieldValue] of Object.entries(value))
      if (field !== '$type') encodeArg(field, fieldValue, out);
    out.push(`</${name}>`);
    return;
  }
  out.push(`<${name}>${escapeXml(String(value))}</${name}>`);
}
