// The mail outbox, for staff: counts, the failed mails with their last error, and a
// retry that requeues them all.

import { api } from './api.js';
import { alertBox, announce, go, h, number, replace, title } from './dom.js';

function age(seconds) {
  if (seconds === null || seconds === undefined) return 'none pending';
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} days`;
}

export async function render(main) {
  const { body: o } = await api('GET', '/api/outbox/');
  const message = h('div', { class: 'form-errors' });
  const retry = h('button', {
    type: 'button', id: 'retry-failed', 'data-focus-key': 'retry', disabled: o.failed === 0,
  }, `Retry ${number(o.failed)} failed mail${o.failed === 1 ? '' : 's'}`);
  retry.addEventListener('click', async () => {
    retry.disabled = true;
    try {
      const { body } = await api('POST', '/api/outbox/retry/');
      announce(`Requeued ${number(body.requeued)} mail${body.requeued === 1 ? '' : 's'}.`);
      go('outbox');
    } catch (err) {
      replace(message, alertBox(`Could not retry: ${err.message}`));
      retry.disabled = false;
    }
  });
  const failed = o.failed_mails.length
    ? h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-labelledby': 'failed-title' },
      h('table', { id: 'failed-table' },
        h('thead', {}, h('tr', {},
          ['#', 'To', 'Subject', 'Attempts', 'Last error', 'Queued'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, o.failed_mails.map((m) => h('tr', {},
          h('td', { text: String(m.id) }),
          h('td', { text: m.recipient }),
          h('td', { text: m.subject }),
          h('td', { class: 'num', text: number(m.attempts) }),
          h('td', { class: 'error-text', text: m.last_error || '—' }),
          h('td', { text: m.created_at.replace('T', ' ').slice(0, 19) }))))))
    : h('p', { text: 'No failed mail.' });
  replace(main,
    title('Outbox'),
    h('dl', { class: 'facts counts', id: 'outbox-counts' },
      h('div', {}, h('dt', { text: 'Pending' }), h('dd', { 'data-count': 'pending', text: number(o.pending) })),
      h('div', {}, h('dt', { text: 'Sent' }), h('dd', { 'data-count': 'sent', text: number(o.sent) })),
      h('div', {}, h('dt', { text: 'Failed' }), h('dd', { 'data-count': 'failed', text: number(o.failed) })),
      h('div', {}, h('dt', { text: 'Oldest pending' }), h('dd', { text: age(o.oldest_pending_age_seconds) }))),
    message,
    h('section', { 'aria-labelledby': 'failed-title' },
      h('div', { class: 'view-head' },
        h('h2', { id: 'failed-title', text: `Failed mail (${number(o.failed)})` }),
        retry),
      o.failed > o.failed_mails.length
        ? h('p', { text: `The oldest ${number(o.failed_mails.length)} are listed.` }) : null,
      failed));
}
