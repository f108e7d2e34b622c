import { expect } from 'vitest';

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  /** The raw body text, for asserting exact bytes. */
  text: string;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  /** Sent verbatim instead of JSON.stringify(body). */
  rawBody?: string;
  headers?: Record<string, string>;
}

/** A thin fetch wrapper for tests: JSON in, parsed JSON (when there is any) out. */
export function apiClient(baseUrl: string, defaultToken?: string) {
  async function request<T = any>(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const token = options.token ?? defaultToken;
    const headers: Record<string, string> = { ...options.headers };
    if (token) headers.Authorization = `Bearer ${token}`;
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['Content-Type'] ??= 'application/json';
    }
    const response = await fetch(`${baseUrl}${path}`, { method, headers, body });
    const text = await response.text();
    let parsed: unknown = text;
    if (response.headers.get('content-type')?.startsWith('application/json') && text) parsed = JSON.parse(text);
    return { status: response.status, headers: response.headers, body: parsed as T, text };
  }
  return {
    baseUrl,
    /** The token this client sends by default, for requests made with other tools (SSE). */
    token: defaultToken,
    request,
    get: <T = any>(path: string, options?: RequestOptions) => request<T>('GET', path, options),
    post: <T = any>(path: string, body?: unknown, options?: RequestOptions) => request<T>('POST', path, { ...options, body }),
    delete: <T = any>(path: string, options?: RequestOptions) => request<T>('DELETE', path, options),
  };
}

export type ApiClient = ReturnType<typeof apiClient>;

/** Matches a whole error body, with any request id. */
export function errorBodyMatching(status: number, type: string, code: string, extra: { message?: unknown; details?: unknown } = {}) {
  return {
    error: {
      message: extra.message ?? expect.any(String),
      type,
      code,
      status,
      id: expect.stringMatching(/^req_[a-z0-9]{16}$/),
      ...(extra.details !== undefined ? { details: extra.details } : {}),
    },
  };
}
