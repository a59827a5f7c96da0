/**
 * Calls to the manager through the server extension (`<base_url>backendai/<path>`), and the
 * one error type they fail with.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * A refusal or failure answered by the manager (or the server extension in front of it).
 *
 * `reason` is the text to show a person: the manager's error `title` (Backend.AI's
 * problem JSON) or `msg`, else the HTTP status line.
 */
export class ManagerError extends Error {
  status: number;
  reason: string;
  type?: string;
  body?: any;

  constructor(status: number, reason: string, type?: string, body?: any) {
    super(reason);
    this.name = 'ManagerError';
    this.status = status;
    this.reason = reason;
    this.type = type;
    this.body = body;
  }
}

/** The text to show for a failed call: the manager's reason when there is one. */
export function errorText(error: unknown): string {
  if (error instanceof ManagerError) {
    return error.reason || error.message;
  }
  if (error && typeof error === 'object' && 'reason' in error) {
    return String((error as { reason: unknown }).reason);
  }
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/** The URL of a manager path through the server extension (`<base_url>backendai/<path>`). */
export function managerURL(endPoint: string): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, 'backendai', endPoint);
}

/** The error of a failed answer, with the manager's reason when its body has one. */
export async function errorFrom(response: Response): Promise<ManagerError> {
  const text = await response.text();
  let body: any = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  let reason = '';
  let type: string | undefined;
  if (body && typeof body === 'object') {
    reason = body.title || body.msg || body.message || body.reason || '';
    type = body.type;
  }
  if (!reason) {
    reason = text && text.length < 300 ? text : `${response.status} ${response.statusText}`;
  }
  return new ManagerError(response.status, reason, type, body);
}

/**
 * Call the manager through the server extension and decode its JSON answer.
 *
 * Goes through ServerConnection so that the XSRF and authorization headers of the Jupyter
 * server are added; a JSON body is given as a string in `init.body`.
 */
export async function requestAPI<T = any>(endPoint: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = managerURL(endPoint);
  const headers = new Headers(init.headers || {});
  if (init.body && typeof init.body === 'string' && !headers.has('Content-Type')) {
    headers.set('Content-Type', 'application/json');
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, { ...init, headers }, settings);
  } catch (error) {
    throw new ManagerError(0, `the server does not answer: ${(error as Error).message || error}`);
  }
  if (!response.ok) {
    throw await errorFrom(response);
  }
  if (response.status === 204) {
    return undefined as T;
  }
  const text = await response.text();
  if (!text) {
    return undefined as T;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ManagerError(response.status, `the answer is not JSON: ${text.slice(0, 200)}`);
  }
}

/** A JSON call to the manager: `requestAPI` with a method and a body to encode. */
export function api<T = any>(
  path: string,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE' = 'GET',
  body?: unknown
): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  return requestAPI<T>(path, init);
}
