// The admin console end to end, in headless Chromium: a staff member's whole session,
// then a non-staff user's. run.sh starts rally and creates the users `boss` (staff) and
// `olive`; RALLY_URL says where it serves.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const BASE = process.env.RALLY_URL;
const PASSWORD = process.env.RALLY_E2E_PASSWORD;
const ARTIFACTS = process.env.RALLY_ARTIFACTS || 'artifacts';
const XSS = '<img src=x onerror=alert(1)>';
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

assert.ok(BASE && PASSWORD, 'run through run.sh: RALLY_URL and RALLY_E2E_PASSWORD are needed');
mkdirSync(ARTIFACTS, { recursive: true });

/** The JSON API directly, for setting the scene and checking what the console did. */
async function call(method, path, token, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(BASE + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
}

async function token(username) {
  const r = await call('POST', '/api/token/', null, { username, password: PASSWORD });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.access;
}

/** Polls until `check` returns a truthy value; fails with `what` after `ms`. */
async function until(what, check, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

async function heading(page) {
  return (await page.locator('main h1').first().textContent()).trim();
}

async function waitHeading(page, text) {
  await until(`heading "${text}"`, async () => (await heading(page)) === text);
}

/** The text of every cell of the first column of a table, by row. */
async function firstColumn(page, table) {
  return page.locator(`${table} tbody tr > :first-child`).allTextContents();
}

async function shot(page, name) {
  // The passing status message would cover part of the picture.
  await page.evaluate(() => { document.getElementById('status').textContent = ''; });
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}

/** A page that records dialogs, CSP violations and page errors, so none goes unseen. */
async function watchedPage(context) {
  const page = await context.newPage();
  page.seen = { dialogs: [], errors: [], refreshes: 0, refused: [] };
  page.on('dialog', async (d) => {
    page.seen.dialogs.push(d.message());
    await d.dismiss();
  });
  page.on('pageerror', (e) => page.seen.errors.push(String(e)));
  page.on('request', (r) => {
    if (r.url().endsWith('/api/token/refresh/')) page.seen.refreshes += 1;
  });
  // A token the API refused: the console should refresh before expiry, never after.
  page.on('response', async (r) => {
    if (r.status() === 401 && (await r.request().headerValue('authorization'))) {
      page.seen.refused.push(r.url());
    }
  });
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return page;
}

async function signIn(page, username) {
  const response = await page.goto(`${BASE}/admin/`);
  assert.equal(response.status(), 200);
  await page.getByLabel('Username').waitFor();
  // By keyboard alone: the form takes the focus, Tab moves on, Enter submits.
  await page.keyboard.type(username);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.locator('#whoami').waitFor({ state: 'visible' });
  return response;
}

let browser;

before(async () => {
  // The machine's network is closed: Chromium's own background traffic is turned off.
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--disable-gpu', '--disable-quic', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
});

describe('a staff member', () => {
  let context;
  let page;
  let boss;
  let olive;
  let spring;

  before(async () => {
    context = await browser.newContext({ viewport: DESKTOP });
    page = await watchedPage(context);
    boss = await token('boss');
    olive = await token('olive');
    // Events of other dates and organizers to filter, sort and page through.
    for (const [who, name, date] of [
      [boss, 'Summer party', '2031-07-02'],
      [boss, 'Autumn talk', '2030-10-10'],
      [olive, "Olive's picnic", '2031-03-20'],
    ]) {
      assert.equal((await call('POST', '/api/events/', who, { name, date })).status, 201);
    }
    for (let i = 1; i <= 23; i += 1) {
      const r = await call('POST', '/api/events/', boss, { name: `Workshop ${String(i).padStart(2, '0')}`, date: `2035-05-${String(i).padStart(2, '0')}` });
      assert.equal(r.status, 201);
    }
  });

  after(async () => {
    await context?.close();
  });

  it('signs in with the keyboard and gets a strict Content-Security-Policy', async () => {
    const response = await signIn(page, 'boss');
    const csp = response.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    await waitHeading(page, 'Events');
    assert.equal(await page.locator('#whoami-name').textContent(), 'boss (staff)');
    assert.ok(await page.getByRole('link', { name: 'Users' }).isVisible());
    assert.ok(await page.getByRole('link', { name: 'Outbox' }).isVisible());
    // The access token is only in memory; the tab keeps just the refresh token.
    const stored = await page.evaluate(() => ({
      session: Object.keys(sessionStorage), local: Object.keys(localStorage), cookie: document.cookie,
    }));
    assert.deepEqual(stored, { session: ['rally.admin.refresh'], local: [], cookie: '' });
  });

  it('creates an event, after the API refused a blank name beside the field', async () => {
    await page.getByRole('link', { name: 'Add event' }).click();
    await waitHeading(page, 'Add event');
    await page.getByLabel('Name').fill('   ');
    await page.getByLabel('Date').fill('2031-03-14');
    await page.getByRole('button', { name: 'Create event' }).click();
    const nameErrors = page.locator('#field-name-errors');
    await until('the name error', async () => (await nameErrors.textContent()) === 'This field may not be blank.');
    assert.equal(await page.getByLabel('Name').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('#field-date-errors li').count(), 0);
    await shot(page, 'event-validation-error');

    await page.getByLabel('Name').fill('Spring meetup');
    await page.getByRole('button', { name: 'Create event' }).click();
    await waitHeading(page, 'Spring meetup');
    spring = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
    const stored = await call('GET', `/api/events/${spring}/`);
    assert.equal(stored.body.name, 'Spring meetup');
    assert.equal(stored.body.date, '2031-03-14');
    assert.equal(stored.body.organizer.username, 'boss');
  });

  it('shows an event named like markup as text, never as HTML', async () => {
    await page.goto(`${BASE}/admin/#/events/new`);
    await waitHeading(page, 'Add event');
    await page.getByLabel('Name').fill(XSS);
    await page.getByLabel('Date').fill('2030-01-05');
    await page.getByRole('button', { name: 'Create event' }).click();
    await waitHeading(page, XSS);
    await page.goto(`${BASE}/admin/#/events?year=2030&month=1`);
    await until('the list with the event', async () => (await firstColumn(page, '#events-table')).includes(XSS));
    assert.equal(await page.locator('main img').count(), 0);
    assert.deepEqual(page.seen.dialogs, []);
  });

  it('drills down to a year and a month', async () => {
    await page.goto(`${BASE}/admin/#/events`);
    await waitHeading(page, 'Events');
    const dates = page.getByRole('navigation', { name: 'Filter by date' });
    await dates.getByRole('link', { name: '2031', exact: true }).click();
    await until('2031 only', async () => {
      const names = await firstColumn(page, '#events-table');
      return names.length === 3 && names.includes('Summer party');
    });
    // The keyboard works the drill-down too.
    await dates.getByRole('link', { name: 'March' }).focus();
    await page.keyboard.press('Enter');
    await until('March 2031 only', async () => {
      const names = await firstColumn(page, '#events-table');
      return names.length === 2 && names.includes('Spring meetup') && names.includes("Olive's picnic");
    });
    assert.match(page.url(), /year=2031&month=3/);
    await dates.getByRole('link', { name: '14', exact: true }).click();
    await until('14 March 2031', async () => JSON.stringify(await firstColumn(page, '#events-table')) === '["Spring meetup"]');
    await dates.getByRole('link', { name: 'All dates' }).click();
    await until('every date again', async () => (await firstColumn(page, '#events-table')).length === 20);
  });

  it('searches by name, filters by organizer and sorts by any column', async () => {
    await page.getByLabel('Search by name').fill('party');
    await page.getByRole('button', { name: 'Search' }).click();
    await until('the search', async () => JSON.stringify(await firstColumn(page, '#events-table')) === '["Summer party"]');
    await page.getByLabel('Search by name').fill('');
    await page.getByRole('button', { name: 'Search' }).click();

    await page.getByLabel('Organizer').selectOption({ label: 'olive' });
    await page.getByRole('button', { name: 'Filter' }).click();
    await until('olive\'s events', async () => JSON.stringify(await firstColumn(page, '#events-table')) === '["Olive\'s picnic"]');
    await page.getByLabel('Organizer').selectOption({ label: 'All organizers' });
    await page.getByRole('button', { name: 'Filter' }).click();
    await until('everyone\'s', async () => (await page.locator('#events-summary').textContent()).includes('of 28 events'));

    const sortBy = (label) => page.locator('#events-table thead button', { hasText: label });
    // Keyboard: focus the column's button and press Enter; focus stays on it afterwards.
    await sortBy('Name').focus();
    await page.keyboard.press('Enter');
    // The XSS event also comes first by date, so the rows alone cannot tell that the
    // sorted table has replaced the old one: wait for the header's state too.
    const sortState = (column) => page.locator('#events-table thead th').nth(column).getAttribute('aria-sort');
    await until('sorted by name', async () => (await sortState(0)) === 'ascending'
      && (await firstColumn(page, '#events-table'))[0] === XSS);
    assert.equal(await page.evaluate(() => document.activeElement.dataset.focusKey), 'sort-name');
    await page.keyboard.press('Enter');
    await until('sorted by name, descending', async () => (await firstColumn(page, '#events-table'))[0] === 'Workshop 23');
    await sortBy('Organizer').click();
    await until('sorted by organizer', async () => {
      if ((await sortState(2)) !== 'ascending') return false;
      const organizers = await page.locator('#events-table tbody tr td:nth-child(3)').allTextContents();
      return organizers[0] === 'boss';
    });
    await sortBy('Date').click();
    await until('sorted by date', async () => (await sortState(1)) === 'ascending'
      && (await firstColumn(page, '#events-table'))[0] === XSS);
  });

  it('pages with the API\'s Link header', async () => {
    await page.goto(`${BASE}/admin/#/events?year=2035`);
    await until('the first page', async () => (await page.locator('#events-summary').textContent()) === '1–20 of 23 events');
    assert.ok(await page.getByRole('button', { name: '← Previous' }).isDisabled());
    await page.getByRole('button', { name: 'Next →' }).click();
    await until('the second page', async () => (await page.locator('#events-summary').textContent()) === '21–23 of 23 events');
    assert.deepEqual(await firstColumn(page, '#events-table'), ['Workshop 21', 'Workshop 22', 'Workshop 23']);
    await page.getByRole('button', { name: '← Previous' }).click();
    await until('the first page again', async () => (await page.locator('#events-summary').textContent()) === '1–20 of 23 events');
  });

  it('edits an event, with the API\'s messages beside the fields', async () => {
    await page.goto(`${BASE}/admin/#/events/${spring}`);
    await waitHeading(page, 'Spring meetup');
    const edit = page.locator('form[aria-labelledby="edit-title"]');
    await edit.getByLabel('Name').fill('x'.repeat(101));
    await edit.getByRole('button', { name: 'Save changes' }).click();
    await until('the length error', async () => (await page.locator('#field-name-errors').textContent()) === 'Ensure this field has no more than 100 characters.');
    await edit.getByLabel('Name').fill('Spring meetup (moved)');
    await edit.getByLabel('Date').fill('2031-04-01');
    await edit.getByRole('button', { name: 'Save changes' }).click();
    await waitHeading(page, 'Spring meetup (moved)');
    const stored = await call('GET', `/api/events/${spring}/`);
    assert.equal(stored.body.name, 'Spring meetup (moved)');
    assert.equal(stored.body.date, '2031-04-01');
  });

  it('sees the attendances of an event with their statuses', async () => {
    const r = await call('POST', `/api/events/${spring}/change_attendee_status/`, olive, { status: 'Going' });
    assert.equal(r.status, 200);
    await page.reload();
    await waitHeading(page, 'Spring meetup (moved)');
    await page.getByRole('button', { name: 'Maybe' }).click();
    await until('both answers', async () => (await page.locator('#attendances-table tbody tr').count()) === 2);
    const rows = await page.locator('#attendances-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
    assert.deepEqual(rows, [['olive', 'olive@example.com', 'Going'], ['boss', 'boss@example.com', 'Maybe']]);
    assert.equal(await page.getByRole('button', { name: 'Maybe' }).getAttribute('aria-pressed'), 'true');
    await shot(page, 'admin-event');

    await page.goto(`${BASE}/admin/#/events?year=2031&month=4`);
    await until('the counts in the list', async () => {
      const cells = await page.locator('#events-table tbody tr').first().locator('td').allTextContents();
      return JSON.stringify(cells) === JSON.stringify(['2031-04-01', 'boss', '1', '1', '0']);
    });
    await page.goto(`${BASE}/admin/#/events`);
    await until('the full list', async () => (await firstColumn(page, '#events-table')).length === 20);
    await shot(page, 'admin-events');
  });

  it('makes and unmakes staff, deactivates and reactivates a user', async () => {
    await page.getByRole('link', { name: 'Users' }).click();
    await waitHeading(page, 'Users');
    const bossRow = page.locator('#users-table tr[data-user="boss"]');
    assert.ok(await bossRow.getByRole('button', { name: 'Remove staff' }).isDisabled());
    assert.ok(await bossRow.getByRole('button', { name: 'Deactivate' }).isDisabled());
    await page.getByLabel('Search by username or email').fill('OLIVE@example');
    await page.getByRole('button', { name: 'Search' }).click();
    await until('the search', async () => JSON.stringify(await firstColumn(page, '#users-table')) === '["olive"]');
    const row = page.locator('#users-table tr[data-user="olive"]');
    await row.getByRole('button', { name: 'Make staff' }).click();
    await row.getByRole('button', { name: 'Remove staff' }).waitFor();
    assert.equal((await call('GET', '/api/users/me/', olive)).body.is_staff, true);
    await row.getByRole('button', { name: 'Remove staff' }).click();
    await row.getByRole('button', { name: 'Make staff' }).waitFor();
    await row.getByRole('button', { name: 'Deactivate' }).click();
    await row.getByRole('button', { name: 'Reactivate' }).waitFor();
    // A deactivated user's token stops working at once.
    assert.equal((await call('GET', '/api/users/me/', olive)).status, 401);
    await row.getByRole('button', { name: 'Reactivate' }).click();
    await row.getByRole('button', { name: 'Deactivate' }).waitFor();
    olive = await token('olive');
    assert.equal((await call('GET', '/api/users/me/', olive)).body.is_staff, false);
    await page.getByLabel('Search by username or email').fill('');
    await page.getByRole('button', { name: 'Search' }).click();
    await until('every user', async () => (await firstColumn(page, '#users-table')).length === 2);
    await shot(page, 'admin-users');
  });

  it('sees failed mail with its last error and retries it', async () => {
    // Mail goes to a closed port with one attempt allowed: every mail fails.
    await until('failed mail', async () => (await call('GET', '/api/outbox/', boss)).body.failed >= 26, 30000);
    await page.getByRole('link', { name: 'Outbox' }).click();
    await waitHeading(page, 'Outbox');
    const failed = Number(await page.locator('dd[data-count="failed"]').textContent());
    assert.ok(failed >= 26, `failed: ${failed}`);
    assert.ok((await page.locator('#failed-table tbody tr').count()) >= 26);
    const error = await page.locator('#failed-table tbody tr td.error-text').first().textContent();
    assert.ok(error.length > 0 && error !== '—', error);
    await shot(page, 'admin-outbox');
    await page.locator('#retry-failed').click();
    await until('the requeue', async () => /Requeued \d+ mails?\./.test(await page.locator('#status').textContent()));
  });

  it('deletes an event after confirming', async () => {
    await page.goto(`${BASE}/admin/#/events/${spring}`);
    await waitHeading(page, 'Spring meetup (moved)');
    await page.getByRole('button', { name: 'Delete event…' }).click();
    await page.getByRole('button', { name: 'Yes, delete it' }).click();
    await waitHeading(page, 'Events');
    assert.equal((await call('GET', `/api/events/${spring}/`)).status, 404);
  });

  it('is readable at phone width', async () => {
    await page.setViewportSize(PHONE);
    await page.goto(`${BASE}/admin/#/events`);
    await until('the list', async () => (await firstColumn(page, '#events-table')).length === 20);
    // Only the table scrolls sideways, in its own box; the page itself does not.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    await shot(page, 'admin-events-phone');
    await page.setViewportSize(DESKTOP);
  });

  it('refreshes its access token before it expires, and a reload keeps the session', async () => {
    // rally runs with 12 s access tokens: the console refreshes a quarter before expiry,
    // on its own timer.
    const before = page.seen.refreshes;
    await until('a refresh', async () => page.seen.refreshes > before, 15000);
    await page.getByRole('link', { name: 'Users' }).click();
    await waitHeading(page, 'Users');
    assert.deepEqual(page.seen.refused, [], 'no request went out with an expired token');
    await page.reload();
    await waitHeading(page, 'Users');
    const r = await page.evaluate(() => fetch('/api/users/me/').then((x) => x.status));
    assert.equal(r, 401, 'the API is not reachable without the in-memory token');
  });

  it('signs out through the blacklist: the refresh token never works again', async () => {
    const refresh = await page.evaluate(() => sessionStorage.getItem('rally.admin.refresh'));
    assert.ok(refresh);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal((await call('POST', '/api/token/refresh/', null, { refresh })).status, 401);
    // A wrong password is refused with the API's message.
    await page.getByLabel('Username').fill('boss');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await until('the refusal', async () => (await page.locator('.alert').textContent()) === 'No active account found with the given credentials');
    await shot(page, 'admin-sign-in');
  });

  it('met no CSP violation, script error or dialog', async () => {
    assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
    assert.deepEqual(page.seen.errors, []);
    assert.deepEqual(page.seen.dialogs, []);
  });
});

describe('a user who is not staff', () => {
  let context;
  let page;

  before(async () => {
    context = await browser.newContext({ viewport: DESKTOP });
    page = await watchedPage(context);
  });

  after(async () => {
    await context?.close();
  });

  it('sees their own events only, and no Users or Outbox page', async () => {
    await signIn(page, 'olive');
    await waitHeading(page, 'Your events');
    assert.equal(await page.locator('#whoami-name').textContent(), 'olive');
    assert.equal(await page.getByRole('link', { name: 'Users' }).count(), 0);
    assert.equal(await page.getByRole('link', { name: 'Outbox' }).isVisible().catch(() => false), false);
    assert.equal(await page.getByLabel('Organizer').count(), 0);
    await until('their events', async () => JSON.stringify(await firstColumn(page, '#events-table')) === '["Olive\'s picnic"]');
    // Asking for the page directly is refused by the API, and the console says so.
    await page.goto(`${BASE}/admin/#/users`);
    await waitHeading(page, 'Not allowed');
    assert.equal(await page.locator('#users-table').count(), 0);
    await page.goto(`${BASE}/admin/#/outbox`);
    await waitHeading(page, 'Not allowed');
    await shot(page, 'non-staff-users');
    assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
    assert.deepEqual(page.seen.errors, []);
  });
});
