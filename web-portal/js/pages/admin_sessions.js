// Admin: every user's sessions with host, state, start time and resources; log any of them off.
import * as api from '../api.js';
import {h, replace, status, table, when} from '../dom.js';
import {isLive, stateLabel} from '../session_state.js';

// The session's resources as its host last reported them: usage of the session's cgroup against
// the limits in force (broker: `resources: {usage, limits}`), else "—".
function mib(bytes) { return `${Math.round(bytes / 1048576)} MiB`; }

export function resources(s) {
  const r = s.resources;
  if (!r || typeof r !== 'object') return '—';
  const u = r.usage || {};
  const l = r.limits || {};
  const parts = [];
  if (u.memory_bytes !== undefined) parts.push(`mem ${mib(u.memory_bytes)}${l.memory_max ? ` / ${mib(l.memory_max)}` : ''}`);
  else if (l.memory_max) parts.push(`mem max ${mib(l.memory_max)}`);
  if (u.pids !== undefined) parts.push(`${u.pids}${l.pids_max ? `/${l.pids_max}` : ''} procs`);
  if (u.cpu_usec !== undefined) parts.push(`cpu ${(u.cpu_usec / 1e6).toFixed(1)} s`);
  if (l.cpu_weight) parts.push(`weight ${l.cpu_weight}`);
  if (l.cpu_max_percent) parts.push(`cpu max ${l.cpu_max_percent} %`);
  return parts.length ? parts.join(', ') : '—';
}

function logoffButton(ctx, s, refresh) {
  const button = h('button', {type: 'button', class: 'danger',
    'aria-label': `Log off ${s.user}'s ${s.app_name} session`}, 'Log off');
  button.addEventListener('click', async () => {
    button.disabled = true;
    button.textContent = 'Logging off…';
    try {
      await api.del(`/api/v1/admin/sessions/${encodeURIComponent(s.session_id)}`);
      status(`${s.user}'s ${s.app_name} session was logged off.`, 'success');
      await refresh(true);
    } catch (e) {
      if (e.status === 401) return ctx.expired();
      status(`Log off failed: ${e.message}`, 'error');
      button.disabled = false;
      button.textContent = 'Log off';
    }
  });
  return button;
}

export async function render(main, ctx) {
  const heading = h('h1', {}, 'All sessions');
  const showEnded = h('input', {type: 'checkbox', id: 'show-ended'});
  const body = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  replace(main, heading,
    h('div', {class: 'toolbar'}, h('span', {class: 'check'}, showEnded,
      h('label', {for: 'show-ended'}, 'Show ended sessions'))), body);
  const refresh = async (keepFocus) => {
    let sessions;
    try {
      ({sessions} = await api.get(`/api/v1/admin/sessions${showEnded.checked ? '?include_ended=true' : ''}`));
    } catch (e) {
      if (e.status === 401) return ctx.expired();
      replace(body, h('p', {class: 'error', role: 'alert'}, `Could not list sessions: ${e.message}`));
      return;
    }
    const rows = sessions.map((s) => {
      const {state, label} = stateLabel(s);
      return [s.user, s.app_name, s.host, h('span', {class: `state state-${state}`}, label),
        when(s.created_at), resources(s), isLive(s) ? logoffButton(ctx, s, refresh) : (s.end_reason || '')];
    });
    replace(body, sessions.length
      ? table(`${sessions.length} session${sessions.length === 1 ? '' : 's'}`,
        ['User', 'App', 'Host', 'State', 'Started', 'Resources', 'Actions'], rows,
        {class: 'data', id: 'all-sessions'})
      : h('p', {id: 'all-sessions-empty'}, 'No sessions.'));
    if (keepFocus) heading.focus();
  };
  showEnded.addEventListener('change', () => refresh(false));
  await refresh(false);
}
