/** Where in a policy's text something is: 1-based line and column, and the 0-based offset. */
import { ZenithError, type ErrorCode } from '../../../core/errors.js';

export interface SourcePosition {
  offset: number;
  line: number;
  column: number;
}

export type PolicyErrorCode = Extract<
  ErrorCode,
  'ZEN_POLICY_SYNTAX' | 'ZEN_POLICY_INVALID' | 'ZEN_POLICY_EVALUATION'
>;

/** The line of the source that holds the position, with a caret under the column. */
export function excerpt(source: string, at: SourcePosition): string {
  const start = source.lastIndexOf('\n', at.offset - 1) + 1;
  const endOfLine = source.indexOf('\n', at.offset);
  const line = source.slice(start, endOfLine === -1 ? undefined : endOfLine);
  return `${line}\n${' '.repeat(Math.max(0, at.column - 1))}^`;
}

/** A coded error that names the line and column, in its message and in its details. */
export function policyError(
  code: PolicyErrorCode,
  source: string,
  at: SourcePosition,
  reason: string,
  extra: Record<string, unknown> = {},
): ZenithError {
  return new ZenithError(code, `line ${at.line}, column ${at.column}: ${reason}`, {
    line: at.line,
    column: at.column,
    offset: at.offset,
    reason,
    excerpt: excerpt(source, at),
    ...extra,
  });
}
