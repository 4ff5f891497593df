// Users, for staff: search, make or unmake staff, deactivate or reactivate. The API
// refuses a staff member's own demotion or deactivation; the buttons say so beforehand.

import { api, links } from './api.js';
import { alertBox, announce, go, h, number, replace, title } from './dom.js';
import { pager } from './events.js';

const PAGE_SIZE = 50;

export async function render(main, me, params) {
  const search = params.get('search') || '';
  const offset = /^\d+$/.test(params.get('offset') || '') ? Number(params.get('offset')) : 0;
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (search) q.set('search', search);
  if (offset) q.set('offset', String(offset));
  const { body: users, headers } = await api('GET', `/api/users/?${q}`);
  const total = Number(headers.get('X-Total-Count') || users.length);

  const input = h('input', { id: 'user-search', type: 'search', name: 'search', value: search, autocomplete: 'off' });
  const form = h('form', { class: 'search', role: 'search', novalidate: true },
    h('label', { for: 'user-search', text: 'Search by username or email' }), input,
    h('button', { type: 'submit', text: 'Search' }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    go('users', { search: input.value.trim() });
  });

  const message = h('div', { class: 'form-errors' });
  const rows = users.map((u) => row(u, me, message));
  const shown = total === 0 ? 'No users match.'
    : users.length === total ? `${number(total)} user${total === 1 ? '' : 's'}`
      : `${number(offset + 1)}–${number(offset + users.length)} of ${number(total)} users`;
  replace(main,
    title('Users'),
    h('div', { class: 'toolbar' }, form),
    message,
    h('p', { class: 'summary', id: 'users-summary', text: shown }),
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'users-summary' },
      h('table', { id: 'users-table' },
        h('thead', {}, h('tr', {},
          ['Username', 'Email', 'Staff', 'Active', 'Joined', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, rows))),
    pager(links(headers), (next) => go('users', { search, offset: next || null }), 'users'));
}

function yesNo(flag) {
  return h('span', { class: `badge ${flag ? 'yes' : 'no'}`, text: flag ? 'Yes' : 'No' });
}

function row(user, me, message) {
  const tr = h('tr', { 'data-user': user.username });
  const self = user.id === me.id;
  const fill = (u) => {
    const toggle = (flag, on, off) => h('button', {
      type: 'button',
      'data-focus-key': `${flag}-${u.id}`,
      disabled: self && u[flag],
      title: self && u[flag] ? 'You cannot do this to your own account.' : null,
      onclick: async (e) => {
        const button = e.currentTarget;
        button.disabled = true;
        try {
          const { body } = await api('PATCH', `/api/users/${u.id}/`, { [flag]: !u[flag] });
          replace(message);
          fill(body);
          announce(`${body.username}: ${flag === 'is_staff' ? (body.is_staff ? 'now staff' : 'no longer staff') : (body.is_active ? 'reactivated' : 'deactivated')}.`);
          tr.querySelector(`[data-focus-key="${flag}-${u.id}"]`).focus();
        } catch (err) {
          const problems = err.body && typeof err.body === 'object'
            ? Object.values(err.body).flat().join(' ') : err.message;
          replace(message, alertBox(`${u.username}: ${problems}`));
          button.disabled = false;
        }
      },
    }, u[flag] ? on : off);
    replace(tr,
      h('th', { scope: 'row', text: u.username }),
      h('td', { text: u.email }),
      h('td', {}, yesNo(u.is_staff)),
      h('td', {}, yesNo(u.is_active)),
      h('td', { text: u.date_joined.slice(0, 10) }),
      h('td', { class: 'row-actions' },
        toggle('is_staff', 'Remove staff', 'Make staff'),
        toggle('is_active', 'Deactivate', 'Reactivate')));
  };
  fill(user);
  return tr;
}
