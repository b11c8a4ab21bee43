/**
 * Reading libvirt's XML with a real XML parser (fast-xml-parser), never with
 * regular expressions. The daemon is a peer, not trusted code: a document that
 * is not well-formed, declares a DOCTYPE or entities (libvirt never does), or
 * lacks what we need is a LIBVIRT_XML_INVALID error, never a crash.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { ZenithError } from '../../core/errors.js';

/** A parsed element: attributes as `@name`, text as `#text` (or the element is its text). */
export type XmlNode = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: false,
});

export function xmlInvalid(what: string, reason: string): ZenithError {
  return new ZenithError(
    'LIBVIRT_XML_INVALID',
    `libvirt sent ${what} that cannot be used: ${reason}`,
    {
      what,
      reason,
    },
  );
}

/** Parses a document and answers its root element; throws LIBVIRT_XML_INVALID. */
export function parseXml(xml: string, root: string, what: string): XmlNode {
  if (/<!(DOCTYPE|ENTITY)/i.test(xml)) throw xmlInvalid(what, 'it declares a DOCTYPE or entities');
  const valid = XMLValidator.validate(xml);
  if (valid !== true)
    throw xmlInvalid(what, `not well-formed XML (line ${valid.err.line}: ${valid.err.msg})`);
  let document: unknown;
  try {
    document = parser.parse(xml);
  } catch (error) {
    throw xmlInvalid(what, (error as Error).message);
  }
  const element = (document as XmlNode)[root];
  if (element === undefined) throw xmlInvalid(what, `no <${root}> element`);
  return asNode(element);
}

/** An element as a node: a text-only element becomes { '#text': … }. */
export function asNode(value: unknown): XmlNode {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as XmlNode;
  if (typeof value === 'string' || typeof value === 'number') return { '#text': String(value) };
  return {};
}

/** The child elements of that name (an element that occurs once is not an array in the parse). */
export function children(node: XmlNode | undefined, name: string): XmlNode[] {
  const value = node?.[name];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(asNode);
}

export function child(node: XmlNode | undefined, name: string): XmlNode | undefined {
  return children(node, name)[0];
}

export function text(node: XmlNode | undefined): string | undefined {
  const value = node?.['#text'];
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
}

export function childText(node: XmlNode | undefined, name: string): string | undefined {
  return text(child(node, name));
}

export function attr(node: XmlNode | undefined, name: string): string | undefined {
  const value = node?.[`@${name}`];
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
}

export function has(node: XmlNode | undefined, name: string): boolean {
  return node?.[name] !== undefined;
}

const unitBytes: Record<string, number> = {
  b: 1,
  bytes: 1,
  kb: 1e3,
  k: 1024,
  kib: 1024,
  mb: 1e6,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  gb: 1e9,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  tb: 1e12,
  t: 1024 ** 4,
  tib: 1024 ** 4,
};

/** A size element such as <memory unit='KiB'>65536</memory>, in bytes (libvirt's default unit differs per element). */
export function sizeBytes(node: XmlNode | undefined, defaultUnit: string): number | undefined {
  const value = text(node);
  if (value === undefined || !/^\d{1,20}$/.test(value)) return undefined;
  const unit = unitBytes[(attr(node, 'unit') ?? defaultUnit).toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Number(value) * unit;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export function wholeNumber(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,15}$/.test(value)) return undefined;
  return Number(value);
}
