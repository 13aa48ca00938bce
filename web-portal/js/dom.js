// Builds DOM nodes without innerHTML, so text from the API (app names, user names, policy
// errors) can never become markup, and without inline handlers or style attributes, which the
// portal's Content-Security-Policy forbids.

// h('button', {type: 'button', class: 'primary', on: {click: fn}}, 'Open')
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'on') {
      for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== 'string') {
      el[key] = value;  // properties such as disabled, hidden, value
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// Replaces the children of el.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// A table with a caption and a header row; rows are arrays of cells (strings or nodes).
export function table(caption, headers, rows, attrs = {}) {
  return h('table', attrs,
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', {scope: 'col'}, t)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))))));
}

// "2026-11-22T09:00:00Z" -> the local date and time; "" for missing values.
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

let statusTimer = null;

// Puts a message in the page's aria-live status region (announced by screen readers).
export function status(message, kind = 'info') {
  const region = document.getElementById('status');
  region.className = `status status-${kind}`;
  region.textContent = message;
  clearTimeout(statusTimer);
  if (message && kind !== 'error') statusTimer = setTimeout(() => { region.textContent = ''; }, 15000);
}
