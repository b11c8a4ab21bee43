/**
 * The typed client of the contract: an operation and its inputs in, its answer's type out. How
 * the request travels (fetch with a token, the CLI's configured server, a test server) is the
 * transport's: it sends, throws the coded error of an error answer, and hands back the body.
 */
import type { Method, OperationSpec, AnswerOf, ParamsOf, QueryOf, BodyOf } from './operation.js';

export interface ApiRequest {
  method: Method;
  /** Under /api/v1: path parameters filled in, the query appended. */
  path: string;
  body?: unknown;
  /** JSON (the default), the text of a CSV answer, or the bytes of a binary one (a ByteAnswer). */
  expect?: 'json' | 'text' | 'bytes';
  signal?: AbortSignal | undefined;
}

/** A binary answer as it arrives: its length and file name as the server gives them, and its bytes. */
export interface ByteAnswer {
  sizeBytes: number | null;
  fileName: string | null;
  body: ReadableStream<Uint8Array>;
}

/** Sends a request; answers the parsed body of a success (undefined for 204), throws on an error answer. */
export type Transport = (request: ApiRequest) => Promise<unknown>;

type Part<Name extends string, T> = [T] extends [undefined]
  ? { readonly [K in Name]?: never }
  : object extends T
    ? { readonly [K in Name]?: T }
    : { readonly [K in Name]: T };

/** What a call of the operation takes: its path parameters, query and body, each when it has them. */
export type InputOf<O extends OperationSpec> = Part<'params', ParamsOf<O>> &
  Part<'query', QueryOf<O>> &
  Part<'body', BodyOf<O>>;

type CallArgs<O extends OperationSpec> =
  object extends InputOf<O>
    ? [input?: InputOf<O>, signal?: AbortSignal]
    : [input: InputOf<O>, signal?: AbortSignal];

type QueryValue = string | number | boolean | readonly (string | number | boolean)[] | undefined;

/** The path of a call: `:name` parameters encoded, the query (lists as repeated parameters) appended. */
export function pathOf(
  spec: OperationSpec,
  input: { params?: Record<string, string>; query?: Record<string, QueryValue> } = {},
): string {
  const path = spec.path.replace(/:(\w+)/g, (_match, name: string) => {
    const value = input.params?.[name];
    if (value === undefined) throw new Error(`${spec.method} ${spec.path}: no ${name}`);
    return encodeURIComponent(value);
  });
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(input.query ?? {})) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) query.append(key, String(item));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

function requestOf(
  spec: OperationSpec,
  input: { params?: unknown; query?: unknown; body?: unknown } | undefined,
  signal: AbortSignal | undefined,
  expect: 'json' | 'text' | 'bytes',
): ApiRequest {
  return {
    method: spec.method,
    path: pathOf(
      spec,
      input as { params?: Record<string, string>; query?: Record<string, QueryValue> },
    ),
    ...(input?.body !== undefined ? { body: input.body } : {}),
    expect,
    signal,
  };
}

export class ApiClient {
  constructor(private readonly transport: Transport) {}

  /** Calls the operation; answers what it declares for success, or throws its coded error. */
  async call<O extends OperationSpec>(
    spec: O,
    ...[input, signal]: CallArgs<O>
  ): Promise<AnswerOf<O>> {
    // The transport hands back the body of a success, which the server holds to the contract.
    return (await this.transport(requestOf(spec, input, signal, 'json'))) as AnswerOf<O>;
  }

  /** An operation that answers CSV with format=csv: its text. */
  async text<O extends OperationSpec & { csv: true }>(
    spec: O,
    ...[input, signal]: CallArgs<O>
  ): Promise<string> {
    return (await this.transport(requestOf(spec, input, signal, 'text'))) as string;
  }

  /** An operation that answers bytes: read them from `body` (its length is `sizeBytes`). */
  async bytes<O extends OperationSpec & { binary: true }>(
    spec: O,
    ...[input, signal]: CallArgs<O>
  ): Promise<ByteAnswer> {
    return (await this.transport(requestOf(spec, input, signal, 'bytes'))) as ByteAnswer;
  }
}
