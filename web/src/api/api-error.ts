/** An error answer of the API, kept with its stable code: the console shows code and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The error's details (e.g. the line and column of a policy syntax error). */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** What a person reads: the code first, so it can be looked up in docs/errors.md. */
  get reason(): string {
    return `${this.code}: ${this.message}`;
  }
}

export async function apiErrorOf(response: Response): Promise<ApiError> {
  const body = (await response.json().catch(() => null)) as {
    error?: { code?: string; message?: string; details?: Record<string, unknown> };
  } | null;
  return new ApiError(
    response.status,
    body?.error?.code ?? `HTTP_${response.status}`,
    body?.error?.message ?? response.statusText,
    body?.error?.details ?? {},
  );
}
