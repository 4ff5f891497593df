// Events: the list (search, filters, date drill-down, sorting, paging), the create form,
// and an event's page (its attendances, the caller's answer, edit and delete).

import { api, ApiError, links } from './api.js';
import {
  alertBox, announce, field, go, h, number, replace, showFieldErrors, title,
} from './dom.js';

const PAGE_SIZE = 20;
/** More years than this between the first and last event are not all offered. */
const MAX_YEARS = 40;

const COLUMNS = [
  { key: 'name', label: 'Name' },
  { key: 'date', label: 'Date' },
  { key: 'organizer', label: 'Organizer' },
  { key: 'going_count', label: 'Going', numeric: true },
  { key: 'maybe_count', label: 'Maybe', numeric: true },
  { key: 'not_going_count', label: 'Not going', numeric: true },
];

const STATUSES = ['Going', 'Maybe', 'Not Going'];

function monthName(month, style = 'long') {
  return new Intl.DateTimeFormat(undefined, { month: style, timeZone: 'UTC' })
    .format(new Date(Date.UTC(2000, month - 1, 1)));
}

function pad(n) {
  return String(n).padStart(2, '0');
}

function daysIn(year, month) {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** A whole number from the fragment within bounds, else null. */
function whole(raw, min, max) {
  if (!raw || !/^\d+$/.test(raw)) return null;
  const n = Number(raw);
  return n >= min && n <= max ? n : null;
}

/** The list's state, read from the fragment's query. */
function readState(params, me) {
  const year = whole(params.get('year'), 1, 9999);
  const month = year ? whole(params.get('month'), 1, 12) : null;
  const day = month ? whole(params.get('day'), 1, daysIn(year, month)) : null;
  const ordering = params.get('ordering') || '';
  const key = ordering.replace(/^-/, '');
  return {
    search: params.get('search') || '',
    // Everyone sees their own events; staff may look at anyone's, or everyone's.
    organizer: me.is_staff ? (params.get('organizer') || '') : String(me.id),
    year,
    month,
    day,
    ordering: COLUMNS.some((c) => c.key === key) ? ordering : '',
    offset: whole(params.get('offset'), 0, Number.MAX_SAFE_INTEGER) || 0,
  };
}

/** The state as the fragment's query (the organizer only where it is a choice). */
function fragment(state, me, changes = {}) {
  const next = { ...state, ...changes };
  return {
    search: next.search,
    organizer: me.is_staff ? next.organizer : '',
    year: next.year,
    month: next.year ? next.month : null,
    day: next.year && next.month ? next.day : null,
    ordering: next.ordering,
    offset: next.offset || null,
  };
}

/** The date bounds of the drill-down's selection. */
function dateBounds(state) {
  const { year, month, day } = state;
  if (!year) return {};
  if (!month) return { date_after: `${year}-01-01`, date_before: `${year}-12-31` };
  if (!day) {
    return { date_after: `${year}-${pad(month)}-01`, date_before: `${year}-${pad(month)}-${daysIn(year, month)}` };
  }
  const d = `${year}-${pad(month)}-${pad(day)}`;
  return { date_after: d, date_before: d };
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') q.set(k, v);
  }
  return q.toString();
}

function organizerName(event) {
  return event.organizer ? event.organizer.username : '—';
}

export async function renderList(main, me, params) {
  const state = readState(params, me);
  const nav = (changes) => go('events', fragment(state, me, changes));
  const filters = { search: state.search, organizer: state.organizer };
  const listed = api('GET', `/api/events/?${query({
    ...filters,
    ...dateBounds(state),
    ordering: state.ordering,
    limit: PAGE_SIZE,
    offset: state.offset,
  })}`);
  // The years to offer: from the first to the last event the other filters leave.
  const ends = state.year ? null : Promise.all(['date', '-date'].map((ordering) =>
    api('GET', `/api/events/?${query({ ...filters, ordering, limit: 1 })}`)));
  const people = me.is_staff ? api('GET', '/api/users/?limit=1000') : null;
  const [{ body: events, headers }, extremes, staffUsers] = await Promise.all([listed, ends, people]);
  const total = Number(headers.get('X-Total-Count') || events.length);
  const pages = links(headers);

  const searchInput = h('input', {
    id: 'event-search', type: 'search', name: 'search', value: state.search, autocomplete: 'off',
  });
  const searchForm = h('form', { class: 'search', role: 'search', novalidate: true },
    h('label', { for: 'event-search', text: 'Search by name' }),
    searchInput,
    h('button', { type: 'submit', text: 'Search' }));
  searchForm.addEventListener('submit', (e) => {
    e.preventDefault();
    nav({ search: searchInput.value.trim(), offset: 0 });
  });

  let organizerForm = null;
  if (me.is_staff) {
    const select = h('select', { id: 'organizer-filter', name: 'organizer' },
      h('option', { value: '', text: 'All organizers' }),
      (staffUsers ? staffUsers.body : []).map((u) => h('option', {
        value: String(u.id), text: u.id === me.id ? `${u.username} (me)` : u.username,
      })));
    if (state.organizer && ![...select.options].some((o) => o.value === state.organizer)) {
      select.appendChild(h('option', { value: state.organizer, text: `user #${state.organizer}` }));
    }
    select.value = state.organizer;
    organizerForm = h('form', { class: 'organizer-filter', novalidate: true },
      h('label', { for: 'organizer-filter', text: 'Organizer' }),
      select,
      h('button', { type: 'submit', text: 'Filter' }));
    organizerForm.addEventListener('submit', (e) => {
      e.preventDefault();
      nav({ organizer: select.value, offset: 0 });
    });
  }

  replace(main,
    h('div', { class: 'view-head' },
      title(me.is_staff ? 'Events' : 'Your events'),
      h('a', { class: 'button', href: '#/events/new', text: 'Add event' })),
    h('div', { class: 'toolbar' }, searchForm, organizerForm),
    dateDrillDown(state, nav, extremes),
    h('p', { class: 'summary', id: 'events-summary' }, summary(total, state.offset, events.length, 'event')),
    table(events, state, nav),
    pager(pages, (offset) => nav({ offset }), 'events'));
}

function summary(total, offset, shown, noun) {
  if (total === 0) return `No ${noun}s match.`;
  const plural = total === 1 ? noun : `${noun}s`;
  if (shown === total) return `${number(total)} ${plural}`;
  return `${number(offset + 1)}–${number(offset + shown)} of ${number(total)} ${plural}`;
}

/** Django's `date_hierarchy`: all dates → a year → a month → a day. */
function dateDrillDown(state, nav, extremes) {
  const crumbs = [];
  const choices = [];
  const link = (text, changes, key, current = false) => h('a', {
    href: '#', 'data-focus-key': key, 'aria-current': current ? 'true' : null,
    onclick: (e) => { e.preventDefault(); nav({ ...changes, offset: 0 }); },
  }, text);
  const { year, month, day } = state;
  if (year) crumbs.push(link('All dates', { year: null, month: null, day: null }, 'dates-all'));
  if (month) crumbs.push(link(String(year), { month: null, day: null }, `year-${year}`));
  if (day) crumbs.push(link(`${monthName(month)} ${year}`, { day: null }, `month-${month}`));
  if (!year && extremes) {
    const [first, last] = extremes.map((r) => r.body[0]);
    if (first && last) {
      const from = Number(first.date.slice(0, 4));
      const to = Math.min(Number(last.date.slice(0, 4)), from + MAX_YEARS - 1);
      for (let y = from; y <= to; y += 1) choices.push(link(String(y), { year: y }, `year-${y}`));
    }
  } else if (year && !month) {
    for (let m = 1; m <= 12; m += 1) choices.push(link(monthName(m), { month: m }, `month-${m}`));
  } else if (month && !day) {
    for (let d = 1; d <= daysIn(year, month); d += 1) {
      choices.push(link(String(d), { day: d }, `day-${d}`));
    }
  }
  const current = day ? `${day} ${monthName(month)} ${year}`
    : month ? `${monthName(month)} ${year}` : year ? String(year) : null;
  return h('nav', { class: 'dates', 'aria-label': 'Filter by date' },
    crumbs.length ? h('ul', { class: 'crumbs' }, crumbs.map((c) => h('li', {}, c))) : null,
    current ? h('p', { class: 'current-date' }, 'Showing ', h('strong', { text: current })) : null,
    choices.length ? h('ul', { class: 'choices' }, choices.map((c) => h('li', {}, c))) : null);
}

function table(events, state, nav) {
  const sortKey = state.ordering.replace(/^-/, '');
  const descending = state.ordering.startsWith('-');
  const head = COLUMNS.map((col) => {
    const active = col.key === sortKey;
    const next = active && !descending ? `-${col.key}` : col.key;
    const sort = active ? (descending ? 'descending' : 'ascending') : null;
    return h('th', { scope: 'col', 'aria-sort': sort, class: col.numeric ? 'num' : null },
      h('button', {
        type: 'button', class: 'sort', 'data-focus-key': `sort-${col.key}`,
        onclick: () => nav({ ordering: next, offset: 0 }),
      }, col.label, h('span', { class: 'arrow', 'aria-hidden': 'true', text: active ? (descending ? ' ▼' : ' ▲') : '' }),
      h('span', { class: 'visually-hidden', text: active ? `, sorted ${sort}` : ', sort' })));
  });
  const rows = events.map((e) => h('tr', {},
    h('th', { scope: 'row' }, h('a', { href: `#/events/${encodeURIComponent(e.id)}`, text: e.name })),
    h('td', { text: e.date }),
    h('td', { text: organizerName(e) }),
    h('td', { class: 'num', text: number(e.going_count) }),
    h('td', { class: 'num', text: number(e.maybe_count) }),
    h('td', { class: 'num', text: number(e.not_going_count) })));
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'events-summary' },
    h('table', { id: 'events-table' }, h('thead', {}, h('tr', {}, head)), h('tbody', {}, rows)));
}

/** Previous / next from the API's `Link` header. */
export function pager(pages, goTo, name) {
  const button = (rel, text) => {
    const target = pages[rel];
    const offset = target ? Number(target.searchParams.get('offset') || 0) : null;
    return h('button', {
      type: 'button', 'data-focus-key': `${name}-${rel}`, disabled: !target,
      onclick: () => goTo(offset),
    }, text);
  };
  if (!pages.prev && !pages.next) return null;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' }, button('prev', '← Previous'), button('next', 'Next →'));
}

/** The name and date fields, for create and edit. */
function eventFields(event) {
  const name = field('name', 'Name', { type: 'text', value: event ? event.name : '', autocomplete: 'off' });
  const date = field('date', 'Date', { type: 'date', value: event ? event.date : '' });
  return { name, date };
}

export async function renderNew(main) {
  const fields = eventFields(null);
  const general = h('div', { class: 'form-errors' });
  const save = h('button', { type: 'submit', text: 'Create event' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'new-event-title' },
    general, fields.name.row, fields.date.row,
    h('div', { class: 'actions' }, save, h('a', { href: '#/events', text: 'Cancel' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    save.disabled = true;
    try {
      const { body } = await api('POST', '/api/events/', {
        name: fields.name.input.value,
        date: fields.date.input.value,
      });
      announce(`Event “${body.name}” created.`);
      go(`events/${encodeURIComponent(body.id)}`);
    } catch (err) {
      showFieldErrors(fields, general, err instanceof ApiError ? err.body : err.message);
    } finally {
      save.disabled = false;
    }
  });
  const heading = title('Add event');
  heading.id = 'new-event-title';
  replace(main, h('p', { class: 'back' }, h('a', { href: '#/events', text: '← Events' })), heading, form);
}

export async function renderDetail(main, me, id) {
  const { body: event } = await api('GET', `/api/events/${encodeURIComponent(id)}/`);
  const mine = event.attendances.find((a) => a.user.id === me.id);
  const canEdit = me.is_staff || (event.organizer && event.organizer.id === me.id);
  const reload = () => go(`events/${encodeURIComponent(event.id)}`);

  const answer = h('div', { class: 'answer', role: 'group', 'aria-labelledby': 'answer-title' },
    h('h2', { id: 'answer-title', text: 'Your answer' }),
    STATUSES.map((status) => h('button', {
      type: 'button', 'aria-pressed': mine && mine.status === status ? 'true' : 'false',
      'data-focus-key': `answer-${status}`,
      onclick: async () => {
        try {
          await api('POST', `/api/events/${encodeURIComponent(event.id)}/change_attendee_status/`, { status });
          announce(`Answered “${status}”.`);
          reload();
        } catch (err) {
          announce(`Could not answer: ${err.message}`);
        }
      },
    }, status)));

  const attendances = event.attendances.length
    ? h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'attendances-title' },
      h('table', { id: 'attendances-table' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', text: 'User' }),
          h('th', { scope: 'col', text: 'Email' }),
          h('th', { scope: 'col', text: 'Status' }))),
        h('tbody', {}, event.attendances.map((a) => h('tr', {},
          h('th', { scope: 'row', text: a.user.username }),
          h('td', { text: a.user.email || '—' }),
          h('td', {}, h('span', { class: `badge status-${a.status.replace(/\s+/g, '-').toLowerCase()}`, text: a.status })))))))
    : h('p', { text: 'No one has answered yet.' });

  replace(main,
    h('p', { class: 'back' }, h('a', { href: '#/events', text: '← Events' })),
    title(event.name),
    h('dl', { class: 'facts' },
      h('dt', { text: 'Date' }), h('dd', { text: event.date }),
      h('dt', { text: 'Organizer' }), h('dd', { text: organizerName(event) }),
      h('dt', { text: 'Going' }), h('dd', { text: number(event.going_count) }),
      h('dt', { text: 'Maybe' }), h('dd', { text: number(event.maybe_count) }),
      h('dt', { text: 'Not going' }), h('dd', { text: number(event.not_going_count) })),
    answer,
    h('section', { 'aria-labelledby': 'attendances-title' },
      h('h2', { id: 'attendances-title', text: `Attendances (${number(event.attendances.length)})` }),
      attendances),
    canEdit ? editSection(event, reload) : null,
    canEdit ? deleteSection(event) : null);
}

function editSection(event, reload) {
  const fields = eventFields(event);
  const general = h('div', { class: 'form-errors' });
  const save = h('button', { type: 'submit', 'data-focus-key': 'save-event', text: 'Save changes' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'edit-title' },
    h('h2', { id: 'edit-title', text: 'Edit' }), general, fields.name.row, fields.date.row,
    h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    save.disabled = true;
    try {
      const { body } = await api('PATCH', `/api/events/${encodeURIComponent(event.id)}/`, {
        name: fields.name.input.value,
        date: fields.date.input.value,
      });
      announce(`Saved “${body.name}”.`);
      reload();
    } catch (err) {
      showFieldErrors(fields, general, err instanceof ApiError ? err.body : err.message);
      save.disabled = false;
    }
  });
  return form;
}

function deleteSection(event) {
  const confirmBox = h('div', { class: 'confirm', hidden: true });
  const ask = h('button', { type: 'button', class: 'danger', text: 'Delete event…' });
  const section = h('section', { class: 'card danger-zone', 'aria-labelledby': 'delete-title' },
    h('h2', { id: 'delete-title', text: 'Delete' }), ask, confirmBox);
  ask.addEventListener('click', () => {
    const n = event.attendances.length;
    const yes = h('button', { type: 'button', class: 'danger', text: 'Yes, delete it' });
    const no = h('button', { type: 'button', text: 'Cancel' });
    replace(confirmBox,
      h('p', { text: `Delete “${event.name}” and its ${n} attendance${n === 1 ? '' : 's'}? This cannot be undone.` }),
      h('div', { class: 'actions' }, yes, no));
    confirmBox.hidden = false;
    ask.hidden = true;
    no.addEventListener('click', () => {
      confirmBox.hidden = true;
      ask.hidden = false;
      ask.focus();
    });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        await api('DELETE', `/api/events/${encodeURIComponent(event.id)}/`);
        announce(`Event “${event.name}” deleted.`);
        go('events');
      } catch (err) {
        replace(confirmBox, alertBox(`Could not delete: ${err.message}`));
      }
    });
    yes.focus();
  });
  return section;
}
