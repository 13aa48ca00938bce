// The user's own sessions: state, reconnect (a new launch of the same app reattaches to the
// running session and downloads a fresh .rdp file) and log off.
import * as api from '../api.js';
import {h, replace, status, table, when} from '../dom.js';
import {launchApp} from '../launch.js';
import {isLive, stateLabel} from '../session_state.js';

function actions(ctx, s, refresh) {
  if (!isLive(s)) return '';
  const reconnect = h('button', {type: 'button', 'aria-label': `Reconnect to ${s.app_name}`}, 'Reconnect');
  reconnect.disabled = !s.reconnectable;
  if (!s.reconnectable) reconnect.title = 'This session was adopted from its host and cannot be reattached';
  reconnect.addEventListener('click', () => launchApp(ctx, s.app_id, s.app_name, reconnect));
  const logoff = h('button', {type: 'button', class: 'danger', 'aria-label': `Log off ${s.app_name}`}, 'Log off');
  logoff.addEventListener('click', async () => {
    logoff.disabled = true;
    logoff.textContent = 'Logging off…';
    try {
      await api.del(`/api/v1/sessions/${encodeURIComponent(s.session_id)}`);
      status(`${s.app_name} was logged off.`, 'success');
      await refresh(true);
    } catch (e) {
      if (e.status === 401) return ctx.expired();
      status(`Log off failed: ${e.message}`, 'error');
      logoff.disabled = false;
      logoff.textContent = 'Log off';
    }
  });
  return h('span', {class: 'actions'}, reconnect, logoff);
}

export async function render(main, ctx) {
  const heading = h('h1', {}, 'My sessions');
  const body = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const refreshButton = h('button', {type: 'button'}, 'Refresh');
  replace(main, heading, h('div', {class: 'toolbar'}, refreshButton), body);
  const refresh = async (keepFocus) => {
    let sessions;
    try {
      ({sessions} = await api.get('/api/v1/sessions'));
    } catch (e) {
      if (e.status === 401) return ctx.expired();
      replace(body, h('p', {class: 'error', role: 'alert'}, `Could not list your sessions: ${e.message}`));
      return;
    }
    if (!sessions.length) {
      replace(body, h('p', {}, 'You have no running sessions. ', h('a', {href: '#/apps'}, 'Start an app.')));
    } else {
      const rows = sessions.map((s) => {
        const {state, label} = stateLabel(s);
        return [s.app_name, h('span', {class: `state state-${state}`}, label), when(s.created_at), s.host,
          actions(ctx, s, refresh)];
      });
      replace(body, table('Your sessions', ['App', 'State', 'Started', 'Host', 'Actions'], rows,
        {class: 'data', id: 'my-sessions'}));
    }
    if (keepFocus) heading.focus();
  };
  refreshButton.addEventListener('click', () => refresh(false));
  await refresh(false);
}
