// Building the page from data. Every text from the API goes in as a text node (or
// textContent); nothing here parses a string as HTML, so a name like
// `<img src=x onerror=…>` shows as those characters.

/**
 * Creates an element. `attrs`: `class`, `text` (textContent), `on<event>` handlers,
 * booleans (true sets an empty attribute, false/null/undefined leaves it out), anything
 * else as an attribute. Children: nodes, strings (as text), arrays, null (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Announces a message in the polite live region (errors use `alert` below). */
export function announce(message) {
  const status = document.getElementById('status');
  status.textContent = '';
  // A fresh text a tick later, so screen readers announce a repeated message too.
  setTimeout(() => { status.textContent = message; }, 30);
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => { status.textContent = ''; }, 6000);
}

/** A block that screen readers read out at once. */
export function alertBox(message) {
  return h('p', { class: 'alert', role: 'alert', text: message });
}

/**
 * A labelled form field with a slot for the API's messages about it. Returns
 * `{row, input, showErrors}`.
 */
export function field(name, label, inputAttrs = {}) {
  const id = `field-${name}`;
  const errorsId = `${id}-errors`;
  const input = h('input', { id, name, ...inputAttrs });
  const errors = h('ul', { id: errorsId, class: 'field-errors' });
  const row = h('div', { class: 'field' }, h('label', { for: id, text: label }), input, errors);
  const showErrors = (messages) => {
    replace(errors, (messages || []).map((m) => h('li', { text: m })));
    if (messages && messages.length) {
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', errorsId);
    } else {
      input.removeAttribute('aria-invalid');
      input.removeAttribute('aria-describedby');
    }
  };
  return { row, input, showErrors };
}

/**
 * Shows a 400's field errors beside their fields; whatever names no field (`detail`,
 * `non_field_errors`, unknown names) goes in `general`. Focuses the first bad field.
 */
export function showFieldErrors(fields, general, body) {
  const rest = [];
  for (const f of Object.values(fields)) f.showErrors([]);
  let first = null;
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    for (const [name, messages] of Object.entries(body)) {
      const list = Array.isArray(messages) ? messages.map(String) : [String(messages)];
      if (fields[name]) {
        fields[name].showErrors(list);
        first = first || fields[name].input;
      } else {
        rest.push(...list);
      }
    }
  } else if (body) {
    rest.push(String(body));
  }
  replace(general, rest.length ? alertBox(rest.join(' ')) : null);
  if (first) first.focus();
}

/** `1 234` style counts, in the page's language. */
export function number(n) {
  return new Intl.NumberFormat().format(n);
}

/** Goes to a route (`events`, `events/<id>` …); `params` become the fragment's query. */
export function go(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') query.set(k, v);
  }
  const target = `#/${path}${query.toString() ? `?${query}` : ''}`;
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = target;
}

/** A view's heading, focusable so the router can move focus to it; sets the tab title. */
export function title(text) {
  document.title = `${text} · rally admin`;
  return h('h1', { tabindex: '-1', text });
}
