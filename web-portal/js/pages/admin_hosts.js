// Admin: the hosts the broker places sessions on, with their state and last load report.
import * as api from '../api.js';
import {h, replace, table} from '../dom.js';

function loadText(host) {
  const load = host.load || {};
  const parts = Object.entries(load).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
  return parts.length ? parts.join(', ') : '—';
}

function usage(host) {
  const pct = host.capacity ? Math.round((100 * host.sessions) / host.capacity) : 0;
  const meter = h('meter', {min: 0, max: host.capacity || 1, value: host.sessions || 0,
    'aria-label': `${host.name} sessions`});
  return h('span', {class: 'usage'}, meter, ` ${host.sessions} / ${host.capacity} (${pct} %)`);
}

export async function render(main, ctx) {
  replace(main, h('h1', {}, 'Hosts'), h('p', {class: 'muted'}, 'Loading…'));
  let hosts;
  try {
    ({hosts} = await api.get('/api/v1/admin/hosts'));
  } catch (e) {
    if (e.status === 401) return ctx.expired();
    replace(main, h('h1', {}, 'Hosts'), h('p', {class: 'error', role: 'alert'}, `Could not list hosts: ${e.message}`));
    return;
  }
  const rows = hosts.map((host) => [
    host.name,
    h('span', {class: `state state-${host.up ? 'running' : 'ended'}`}, host.up ? 'Up' : 'Down'),
    usage(host),
    host.isolation,
    loadText(host),
    host.seconds_since_seen === null || host.seconds_since_seen === undefined ? 'never' : `${host.seconds_since_seen} s ago`,
    host.last_error || '',
  ]);
  replace(main, h('h1', {}, 'Hosts'), hosts.length
    ? table(`${hosts.length} host${hosts.length === 1 ? '' : 's'}`,
      ['Host', 'State', 'Sessions', 'Isolation', 'Load', 'Last seen', 'Last error'], rows,
      {class: 'data', id: 'hosts'})
    : h('p', {}, 'No hosts are configured or registered.'));
}
