// The JSON API and the session. The access token lives in this module's memory only;
// the refresh token in sessionStorage, so it lasts as long as the tab and no longer.
// The access token is refreshed shortly before it expires (its `exp` claim), and a
// refresh token is single-use (rotation), so refreshes are never run two at a time.

const REFRESH_KEY = 'rally.admin.refresh';

let access = null;
let timer = null;
let inflight = null;
const signedOutListeners = [];

/** An answer the API gave with a status other than 2xx. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Calls `listener(reason)` when the session ends without the user signing out. */
export function onSignedOut(listener) {
  signedOutListeners.push(listener);
}

/** The claims of a JWT, or null. Only read to learn `exp`: the server checks tokens. */
function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
  } catch {
    return null;
  }
}

function keep(pair) {
  access = pair.access;
  sessionStorage.setItem(REFRESH_KEY, pair.refresh);
  schedule();
}

/** Refreshes a quarter of the lifetime before expiry (at most 30 s before). */
function schedule() {
  clearTimeout(timer);
  const c = claims(access);
  if (!c || typeof c.exp !== 'number') return;
  const lifetime = typeof c.iat === 'number' ? c.exp - c.iat : 300;
  const margin = Math.min(30, lifetime / 4);
  const delay = Math.max(1000, (c.exp - margin) * 1000 - Date.now());
  timer = setTimeout(() => {
    refresh().catch(() => {});
  }, delay);
}

function forget() {
  clearTimeout(timer);
  access = null;
  sessionStorage.removeItem(REFRESH_KEY);
}

function endSession(reason) {
  forget();
  for (const listener of signedOutListeners) listener(reason);
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}

async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  return { response, body: await readBody(response) };
}

/** A new pair for the refresh token; the session ends if it is refused. */
function refresh() {
  if (inflight) return inflight;
  inflight = (async () => {
    const token = sessionStorage.getItem(REFRESH_KEY);
    if (!token) throw new ApiError(401, { detail: 'Not signed in.' });
    const { response, body } = await post('/api/token/refresh/', { refresh: token });
    if (response.ok) {
      keep(body);
      return;
    }
    if (response.status === 401 || response.status === 400) {
      endSession('Your session has ended. Please sign in again.');
    }
    throw new ApiError(response.status, body);
  })().finally(() => {
    inflight = null;
  });
  return inflight;
}

/** Signs in; throws ApiError with the API's message when refused. */
export async function signIn(username, password) {
  const { response, body } = await post('/api/token/', { username, password });
  if (!response.ok) throw new ApiError(response.status, body);
  keep(body);
}

/** Picks up the tab's session after a reload; false when there is none. */
export async function resume() {
  if (!sessionStorage.getItem(REFRESH_KEY)) return false;
  try {
    await refresh();
    return true;
  } catch {
    return false;
  }
}

/** Signs out: the refresh token is blacklisted, so it never works again. */
export async function signOut() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  forget();
  if (token) {
    // Signed out locally either way; a failure here leaves only a token nobody holds.
    await post('/api/token/blacklist/', { refresh: token }).catch(() => {});
  }
}

/**
 * Calls the API as the signed-in user. Resolves to `{status, body, headers}` for 2xx;
 * throws ApiError otherwise. An access token refused as expired is refreshed once.
 */
export async function api(method, path, body) {
  if (!access) await refresh();
  let result = await send(method, path, body);
  if (result.status === 401 && sessionStorage.getItem(REFRESH_KEY)) {
    await refresh();
    result = await send(method, path, body);
  }
  if (result.status === 401) endSession('Your session has ended. Please sign in again.');
  if (result.status < 200 || result.status >= 300) {
    throw new ApiError(result.status, result.body);
  }
  return result;
}

async function send(method, path, body) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${access}` };
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  return { status: response.status, headers: response.headers, body: await readBody(response) };
}

/** The `next` and `prev` targets of an RFC 8288 `Link` header, as URL objects. */
export function links(headers) {
  const found = {};
  const raw = headers.get('Link');
  if (!raw) return found;
  for (const part of raw.split(',')) {
    const match = /<([^>]*)>\s*;\s*rel="?([a-z]+)"?/.exec(part.trim());
    if (match) found[match[2]] = new URL(match[1], location.href);
  }
  return found;
}
