/**
 * One operation of the API as the contract declares it: method and path, who may call it, its
 * inputs, and every answer it gives. The server registers its routes from these (validation and
 * the OpenAPI document), and the typed client takes its request and answer types from them.
 */
import type { Static, TObject, TSchema } from 'typebox';
import type { Permission } from './permissions.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type SuccessStatus = 200 | 201 | 202 | 204;
export type ErrorStatus =
  400 | 401 | 403 | 404 | 409 | 413 | 414 | 415 | 422 | 429 | 500 | 502 | 503 | 504;

/** `public`: no credentials; `self`: any identity (the operation decides itself); else the permission. */
export type Auth = 'public' | 'self' | Permission;

export interface OperationSpec {
  readonly method: Method;
  /** Under /api/v1, path parameters as `:name`. */
  readonly path: string;
  readonly auth: Auth;
  /** The group of operations it belongs to in the document (one per API noun). */
  readonly tag: string;
  readonly summary: string;
  readonly params?: TObject;
  readonly query?: TObject;
  readonly body?: TSchema;
  /** The answers when it succeeds, by status; 204 answers nothing (see NoContent). */
  readonly success: { readonly [S in SuccessStatus]?: TSchema };
  /**
   * Error statuses of the operation's own refusals. Those every operation of its kind can answer
   * (a malformed request, no credentials, no permission, an unknown id, …) are added by
   * errorStatusesOf and need not be listed.
   */
  readonly errors?: readonly ErrorStatus[];
  /** With `?format=csv` the success answer is text/csv instead of JSON. */
  readonly csv?: true;
  /** The answer is a Server-Sent Events stream whose `data` are the success schema. */
  readonly stream?: true;
  /** The success answer is bytes (application/octet-stream) with a Content-Length, not JSON. */
  readonly binary?: true;
}

/** Declares an operation; the spec is kept as written, so that its types stay exact. */
export function operation<const S extends OperationSpec>(spec: S): S {
  return spec;
}

type StaticOf<T> = T extends TSchema ? Static<T> : undefined;

export type ParamsOf<O extends OperationSpec> = StaticOf<O['params']>;
export type QueryOf<O extends OperationSpec> = StaticOf<O['query']>;
export type BodyOf<O extends OperationSpec> = StaticOf<O['body']>;

/** What a successful call answers (undefined for 204). */
export type AnswerOf<O extends OperationSpec> = {
  [S in keyof O['success']]: S extends 204
    ? undefined
    : O['success'][S] extends TSchema
      ? Static<O['success'][S]>
      : never;
}[keyof O['success']];

/** The statuses the operation answers when it succeeds. */
export function successStatusesOf(spec: OperationSpec): SuccessStatus[] {
  return Object.keys(spec.success).map(Number) as SuccessStatus[];
}
