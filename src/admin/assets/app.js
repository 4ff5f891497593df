// The console's shell: sign-in, the navigation, and a router over the URL's fragment
// (`#/events?…`, `#/events/<id>`, `#/users`, `#/outbox`), so every view has an address
// the back button and a reload keep.

import { api, ApiError, onSignedOut, resume, signIn, signOut } from './api.js';
import { alertBox, announce, field, h, replace, showFieldErrors, title } from './dom.js';
import * as events from './events.js';
import * as users from './users.js';
import * as outbox from './outbox.js';

const main = document.getElementById('main');
let me = null;

/** The route in the fragment: path segments and query parameters. */
function route() {
  const raw = location.hash.startsWith('#/') ? location.hash.slice(2) : 'events';
  const [path, query = ''] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

function focusHeading() {
  const heading = main.querySelector('h1');
  if (heading) heading.focus();
}

function showChrome(signedIn) {
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('whoami').hidden = !signedIn;
  for (const el of document.querySelectorAll('[data-staff]')) el.hidden = !(signedIn && me && me.is_staff);
  document.getElementById('whoami-name').textContent = signedIn && me ? `${me.username}${me.is_staff ? ' (staff)' : ''}` : '';
}

function markSection(section) {
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function renderSignIn(message) {
  me = null;
  lastPath = null;
  showChrome(false);
  const general = h('div', { class: 'form-errors' }, message ? alertBox(message) : null);
  const username = field('username', 'Username', { autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' });
  const password = field('password', 'Password', { type: 'password', autocomplete: 'current-password' });
  const button = h('button', { type: 'submit', text: 'Sign in' });
  const form = h('form', { class: 'card sign-in', novalidate: true, 'aria-labelledby': 'sign-in-title' },
    h('h1', { id: 'sign-in-title', tabindex: '-1', text: 'Sign in to rally' }),
    general, username.row, password.row, button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await signIn(username.input.value, password.input.value);
      await start();
    } catch (e) {
      const body = e instanceof ApiError ? e.body : { detail: 'The server could not be reached.' };
      const fields = { username, password };
      showFieldErrors(fields, general, body);
      if (!(body && (body.username || body.password))) password.input.focus();
    } finally {
      button.disabled = false;
    }
  });
  document.title = 'Sign in · rally admin';
  replace(main, form);
  username.input.focus();
}

let lastPath = null;

async function render() {
  if (!me) return;
  const { parts, params } = route();
  const section = parts[0] || 'events';
  // A control that re-renders its own view (a sort button, a page link) keeps the focus
  // on its successor; a new view puts it on the heading.
  const focusKey = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.focusKey : null;
  const path = parts.join('/');
  const samePath = path === lastPath;
  lastPath = path;
  markSection(section);
  replace(main, h('p', { class: 'loading', text: 'Loading…' }));
  try {
    if (section === 'events' && parts[1] === 'new') await events.renderNew(main, me);
    else if (section === 'events' && parts[1]) await events.renderDetail(main, me, parts[1]);
    else if (section === 'events') await events.renderList(main, me, params);
    else if (section === 'users') await users.render(main, me, params);
    else if (section === 'outbox') await outbox.render(main, me);
    else replace(main, title('Not found'), h('p', { text: 'There is no such page.' }));
  } catch (e) {
    if (!me) return; // signed out meanwhile: the sign-in form is showing
    const text = e instanceof ApiError && e.status === 403
      ? 'You do not have permission to see this page.'
      : e instanceof ApiError && e.status === 404 ? 'Not found.' : `Something went wrong: ${e.message}`;
    replace(main, title(e instanceof ApiError && e.status === 403 ? 'Not allowed' : 'Error'), alertBox(text));
  }
  const successor = samePath && focusKey
    ? main.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`) : null;
  if (successor) successor.focus();
  else focusHeading();
}

async function start() {
  const { body } = await api('GET', '/api/users/me/');
  me = body;
  showChrome(true);
  await render();
}

onSignedOut((reason) => renderSignIn(reason));

window.addEventListener('hashchange', () => render());

document.getElementById('sign-out').addEventListener('click', async () => {
  await signOut();
  renderSignIn();
  announce('Signed out.');
});

(async () => {
  if (await resume()) {
    try {
      await start();
      return;
    } catch {
      // fall through to the sign-in form
    }
  }
  renderSignIn();
})();
