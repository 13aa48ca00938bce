// Admin: the policy editor (JSON form of docs/policies.md), its version history with rollback,
// and a user's effective policy with the source of each field. A refused save (400) lists the
// broker's validation errors next to the editor; the version in force stays unchanged.
import * as api from '../api.js';
import {h, replace, status, table, when} from '../dom.js';

const BASE = '/api/v1/admin/policies';

function versionLine(v) {
  return `Version ${v.version}, by ${v.author || 'unknown'}, ${when(v.created_at)}` +
    (v.comment ? ` — “${v.comment}”` : '');
}

function showErrors(list, textarea, errors) {
  replace(list, errors.length
    ? h('ul', {}, errors.map((e) => h('li', {}, h('code', {}, e.path || '(policy)'), `: ${e.message}`)))
    : null);
  if (errors.length) textarea.setAttribute('aria-invalid', 'true');
  else textarea.removeAttribute('aria-invalid');
}

function editor(ctx, state) {
  const textarea = h('textarea', {id: 'policy-json', rows: 18, spellcheck: 'false',
    'aria-describedby': 'policy-help policy-errors'});
  const comment = h('input', {id: 'policy-comment', type: 'text', maxlength: 200});
  const errors = h('div', {id: 'policy-errors', class: 'error', role: 'alert'});
  const current = h('p', {id: 'policy-current', class: 'muted'});
  const save = h('button', {type: 'submit', class: 'primary'}, 'Save');
  const reload = h('button', {type: 'button'}, 'Discard changes');
  const form = h('form', {class: 'card', 'aria-labelledby': 'policy-editor-title'},
    h('h2', {id: 'policy-editor-title'}, 'Policy in force'), current,
    h('div', {class: 'field'}, h('label', {for: 'policy-json'}, 'Policy (JSON)'),
      h('p', {id: 'policy-help', class: 'hint'}, 'defaults, groups and users, as described in the ' +
        'policy documentation. Sizes like "2G", durations like "30m".'), textarea, errors),
    h('div', {class: 'field'}, h('label', {for: 'policy-comment'}, 'Comment (optional)'), comment),
    h('div', {class: 'buttons'}, save, reload));
  state.load = (v) => {
    textarea.value = JSON.stringify(v.policy, null, 2);
    current.textContent = versionLine(v);
    showErrors(errors, textarea, []);
  };
  reload.addEventListener('click', () => { if (state.current) state.load(state.current); textarea.focus(); });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    let policy;
    try {
      policy = JSON.parse(textarea.value);
    } catch (e) {
      showErrors(errors, textarea, [{path: '(JSON)', message: `not valid JSON: ${e.message}`}]);
      textarea.focus();
      return;
    }
    save.disabled = true;
    try {
      const body = comment.value ? {policy, comment: comment.value} : {policy};
      const v = await api.put(BASE, body);
      state.current = v;
      state.load(v);
      comment.value = '';
      status(`Policy saved as version ${v.version}.`, 'success');
      await state.refreshHistory();
    } catch (e) {
      if (e.status === 401) return ctx.expired();
      const list = Array.isArray(e.body.errors) && e.body.errors.length
        ? e.body.errors : [{path: '', message: e.message}];
      showErrors(errors, textarea, list);
      status(`The policy was not saved: ${list.length} error${list.length === 1 ? '' : 's'}.`, 'error');
      textarea.focus();
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

function historySection(ctx, state) {
  const body = h('div', {id: 'policy-history'});
  const viewer = h('div', {id: 'policy-version-view', 'aria-live': 'polite'});
  const view = async (n) => {
    try {
      const v = await api.get(`${BASE}/versions/${n}`);
      replace(viewer, h('h3', {}, versionLine(v)), h('pre', {class: 'json'}, JSON.stringify(v.policy, null, 2)));
    } catch (e) {
      if (e.status === 401) return ctx.expired();
      replace(viewer, h('p', {class: 'error', role: 'alert'}, `Could not load version ${n}: ${e.message}`));
    }
  };
  const rollback = async (n, button) => {
    button.disabled = true;
    try {
      const v = await api.post(`${BASE}/rollback`, {version: n});
      state.current = v;
      state.load(v);
      status(`Rolled back: version ${v.version} has the content of version ${n}.`, 'success');
      await state.refreshHistory();
    } catch (e) {
      if (e.status === 401) return ctx.expired();
      status(`Rollback failed: ${e.message}`, 'error');
      button.disabled = false;
    }
  };
  state.refreshHistory = async () => {
    let versions;
    try {
      ({versions} = await api.get(`${BASE}/history`));
    } catch (e) {
      if (e.status === 401) return ctx.expired();
      replace(body, h('p', {class: 'error'}, `Could not load the history: ${e.message}`));
      return;
    }
    const rows = versions.map((v) => {
      const viewButton = h('button', {type: 'button', 'aria-label': `View version ${v.version}`}, 'View');
      viewButton.addEventListener('click', () => view(v.version));
      const isCurrent = state.current && state.current.version === v.version;
      const back = h('button', {type: 'button', 'aria-label': `Roll back to version ${v.version}`}, 'Roll back');
      back.disabled = Boolean(isCurrent);
      back.addEventListener('click', () => rollback(v.version, back));
      return [String(v.version) + (isCurrent ? ' (in force)' : ''), v.author || '', when(v.created_at),
        v.comment || '', h('span', {class: 'actions'}, viewButton, back)];
    });
    replace(body, table('Versions, newest first', ['Version', 'Author', 'Created', 'Comment', 'Actions'],
      rows, {class: 'data'}));
  };
  return h('section', {class: 'card', 'aria-labelledby': 'history-title'},
    h('h2', {id: 'history-title'}, 'Version history'), body, viewer);
}

function resolveSection(ctx) {
  const user = h('input', {id: 'resolve-user', type: 'text', required: true, autocapitalize: 'none'});
  const result = h('div', {id: 'resolve-result', 'aria-live': 'polite'});
  const form = h('form', {class: 'card inline', 'aria-labelledby': 'resolve-title'},
    h('h2', {id: 'resolve-title'}, 'Effective policy of a user'),
    h('div', {class: 'field'}, h('label', {for: 'resolve-user'}, 'User name'), user),
    h('button', {type: 'submit'}, 'Show'), result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!user.value) { user.focus(); return; }
    try {
      const r = await api.get(`${BASE}/resolve?user=${encodeURIComponent(user.value)}`);
      const effective = r.effective || r.policy || {};
      const sources = r.sources || {};
      const rows = Object.keys(effective).sort().map((k) => [k,
        typeof effective[k] === 'object' ? JSON.stringify(effective[k]) : String(effective[k]), sources[k] || '']);
      replace(result,
        h('p', {}, `Groups with a rule: ${(r.groups || []).join(', ') || 'none'}`),
        table(`Effective policy of ${r.user}`, ['Field', 'Value', 'Source'], rows, {class: 'data', id: 'resolve-table'}));
    } catch (e) {
      if (e.status === 401) return ctx.expired();
      replace(result, h('p', {class: 'error', role: 'alert'},
        e.status === 404 ? `No user named ${user.value}.` : `Could not resolve: ${e.message}`));
    }
  });
  return form;
}

export async function render(main, ctx) {
  replace(main, h('h1', {}, 'Policy'), h('p', {class: 'muted'}, 'Loading…'));
  let current;
  try {
    current = await api.get(BASE);
  } catch (e) {
    if (e.status === 401) return ctx.expired();
    replace(main, h('h1', {}, 'Policy'), h('p', {class: 'error', role: 'alert'},
      e.status === 404 || e.status === 503 ? 'Policy administration is not available on this broker.'
        : `Could not load the policy: ${e.message}`));
    return;
  }
  const state = {current, load: null, refreshHistory: async () => {}};
  const form = editor(ctx, state);
  const history = historySection(ctx, state);
  replace(main, h('h1', {}, 'Policy'), form, history, resolveSection(ctx));
  state.load(current);
  await state.refreshHistory();
}
