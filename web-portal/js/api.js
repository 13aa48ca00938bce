// The broker's JSON API (docs/broker.md): the browser session is an HttpOnly cookie; every
// POST/PUT/DELETE carries the CSRF token from the login or /me answer.

let csrfToken = '';

export function setCsrfToken(token) { csrfToken = token || ''; }

export class ApiError extends Error {
  constructor(status, body, response) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    const retry = response && response.headers.get('Retry-After');
    this.retryAfter = retry ? Number.parseInt(retry, 10) : null;
  }
}

async function errorOf(response) {
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  return new ApiError(response.status, body, response);
}

// One API call. body: a value sent as JSON. accept: what to read back ('json' or 'blob').
export async function call(method, path, {body, accept = 'json'} = {}) {
  const headers = {Accept: accept === 'json' ? 'application/json' : 'application/x-rdp'};
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (!response.ok) throw await errorOf(response);
  if (accept === 'blob') return {blob: await response.blob(), headers: response.headers};
  return response.json();
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, {body});
export const put = (path, body) => call('PUT', path, {body});
export const del = (path) => call('DELETE', path);
