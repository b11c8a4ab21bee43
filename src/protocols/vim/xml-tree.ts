/**
 * A small element tree from a namespace-aware streaming parser (saxes): every
 * element carries its namespace URI and local name, and an `xsi:type`
 * attribute is resolved to a qualified name whatever prefix the peer used
 * (govmomi's simulator writes `XMLSchema-instance:type`, vCenter `xsi:type`).
 * Malformed or truncated input fails with VIM_PROTOCOL_ERROR, never a crash.
 */
import { SaxesParser, type SaxesTagNS } from 'saxes';
import { ZenithError } from '../../core/errors.js';

export const XSI = 'http://www.w3.org/2001/XMLSchema-instance';
export const XSD = 'http://www.w3.org/2001/XMLSchema';

export interface QName {
  ns: string;
  local: string;
}

export interface XmlElement {
  ns: string;
  name: string;
  /** Attributes without a namespace (such as a managed object reference's `type`). */
  attrs: Record<string, string>;
  /** The resolved xsi:type, when present. */
  xsiType: QName | undefined;
  children: XmlElement[];
  text: string;
}

/**
 * Hands over elements as they close instead of keeping them in the tree: every element named
 * `name` at `depth` (the root is at 0) goes to `onElement`, detached from its parent. A large
 * reply is then decoded while it arrives and never held whole.
 */
export interface XmlEmit {
  depth: number;
  name: string;
  onElement(element: XmlElement): void;
}

/** Parses a document fed in chunks; resolves with the root element once the input ends. */
export class XmlTreeBuilder {
  readonly #parser = new SaxesParser({ xmlns: true, position: false });
  readonly #stack: XmlElement[] = [];
  readonly #maxDepth: number;
  readonly #emit: XmlEmit | undefined;
  #root: XmlElement | undefined;
  #failure: ZenithError | undefined;

  constructor(options: { maxDepth?: number; emit?: XmlEmit } = {}) {
    this.#maxDepth = options.maxDepth ?? 64;
    this.#emit = options.emit;
    const parser = this.#parser;
    parser.on('opentag', (tag) => this.#open(tag));
    parser.on('text', (text) => {
      const top = this.#stack[this.#stack.length - 1];
      if (top) top.text += text;
    });
    parser.on('cdata', (text) => {
      const top = this.#stack[this.#stack.length - 1];
      if (top) top.text += text;
    });
    parser.on('closetag', () => {
      const closed = this.#stack.pop();
      const emit = this.#emit;
      if (!emit || !closed || this.#failure) return;
      if (this.#stack.length !== emit.depth || closed.name !== emit.name) return;
      this.#stack[this.#stack.length - 1]?.children.pop();
      try {
        emit.onElement(closed);
      } catch (error) {
        this.#failure = toProtocolError(error);
      }
    });
    parser.on('error', (error) => {
      this.#failure ??= protocolError(`the reply is not well-formed XML: ${error.message}`);
    });
  }

  write(chunk: string): void {
    if (this.#failure) return;
    try {
      this.#parser.write(chunk);
    } catch (error) {
      this.#failure ??= toProtocolError(error);
    }
  }

  end(): XmlElement {
    if (!this.#failure) {
      try {
        this.#parser.close();
      } catch (error) {
        this.#failure ??= toProtocolError(error);
      }
    }
    if (this.#failure) throw this.#failure;
    if (!this.#root) throw protocolError('the reply is empty');
    return this.#root;
  }

  #open(tag: SaxesTagNS): void {
    if (this.#failure) return;
    if (this.#stack.length >= this.#maxDepth) {
      this.#failure = protocolError(`the reply nests deeper than ${this.#maxDepth} elements`);
      return;
    }
    // Most elements of a reply have no plain attribute: they share one empty record.
    let attrs: Record<string, string> = noAttributes;
    let xsiType: QName | undefined;
    for (const name in tag.attributes) {
      const attribute = tag.attributes[name]!;
      if (attribute.uri === '') {
        if (attrs === noAttributes) attrs = {};
        attrs[attribute.local] = attribute.value;
      } else if (attribute.uri === XSI && attribute.local === 'type')
        xsiType = this.#resolveQName(attribute.value);
    }
    const element: XmlElement = {
      ns: tag.uri,
      name: tag.local,
      attrs,
      xsiType,
      children: [],
      text: '',
    };
    const parent = this.#stack[this.#stack.length - 1];
    if (parent) parent.children.push(element);
    else this.#root = element;
    this.#stack.push(element);
  }

  #resolveQName(value: string): QName {
    const colon = value.indexOf(':');
    if (colon < 0) return { ns: this.#parser.resolve('') ?? '', local: value };
    const prefix = value.slice(0, colon);
    return { ns: this.#parser.resolve(prefix) ?? prefix, local: value.slice(colon + 1) };
  }
}

const noAttributes: Record<string, string> = Object.freeze({});

/** Parses a whole document at once. */
export function parseXml(text: string): XmlElement {
  const builder = new XmlTreeBuilder();
  builder.write(text);
  return builder.end();
}

export function child(element: XmlElement, name: string): XmlElement | undefined {
  return element.children.find((c) => c.name === name);
}

export function childrenNamed(element: XmlElement, name: string): XmlElement[] {
  return element.children.filter((c) => c.name === name);
}

function protocolError(message: string): ZenithError {
  return new ZenithError('VIM_PROTOCOL_ERROR', message);
}

function toProtocolError(error: unknown): ZenithError {
  if (error instanceof ZenithError) return error;
  return protocolError(
    `the reply is not well-formed XML: ${error instanceof Error ? error.message : String(error)}`,
  );
}
