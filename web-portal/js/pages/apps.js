// The user's published apps as a grid of icons and names; activating one launches it.
import * as api from '../api.js';
import {h, replace} from '../dom.js';
import {launchApp} from '../launch.js';

const knownIcons = ['xterm', 'xclock', 'testpattern'];

// The catalog's icon: a same-origin URL, or a file name under icons/; else a guess from the
// app's id for the demo apps, else the generic icon. Other origins are blocked by the CSP.
export function iconUrl(app) {
  const icon = app.icon || '';
  if (icon.startsWith('/') && !icon.startsWith('//')) return icon;
  if (/^[A-Za-z0-9._-]+$/.test(icon) && !icon.startsWith('.')) {
    return `icons/${icon.includes('.') ? icon : `${icon}.svg`}`;
  }
  const key = `${app.id} ${app.name}`.toLowerCase();
  for (const name of knownIcons) if (key.includes(name)) return `icons/${name}.svg`;
  if (key.includes('pattern')) return 'icons/testpattern.svg';
  return 'icons/app.svg';
}

function appTile(ctx, app) {
  const img = h('img', {src: iconUrl(app), alt: '', width: 64, height: 64});
  img.addEventListener('error', () => { if (!img.src.endsWith('icons/app.svg')) img.src = 'icons/app.svg'; },
    {once: true});
  const button = h('button', {type: 'button', class: 'app-launch', dataset: {app: app.id},
    'aria-label': `Open ${app.name}`});
  const label = h('span', {class: 'app-name'}, app.name);
  button.append(img, label);
  button.addEventListener('click', async () => {
    // launchApp replaces the button's text while starting; keep the tile's icon and name.
    const started = await launchTile(ctx, app, button, label);
    if (started) button.focus();
  });
  return h('li', {class: 'app-tile'}, button,
    app.isolation === 'vm' ? h('span', {class: 'badge'}, 'Desktop VM') : null);
}

async function launchTile(ctx, app, button, label) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.classList.add('starting');
  label.textContent = `${app.name} — starting…`;
  try {
    return await launchApp(ctx, app.id, app.name, null);
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.classList.remove('starting');
    label.textContent = app.name;
  }
}

export async function render(main, ctx) {
  replace(main, h('h1', {}, 'Your apps'), h('p', {class: 'muted'}, 'Loading…'));
  let apps;
  try {
    ({apps} = await api.get('/api/v1/apps'));
  } catch (e) {
    if (e.status === 401) return ctx.expired();
    replace(main, h('h1', {}, 'Your apps'), h('p', {class: 'error', role: 'alert'}, `Could not list your apps: ${e.message}`));
    return;
  }
  const intro = h('p', {class: 'muted'},
    'Choose an app to start it. Your browser downloads a connection file (.rdp); open it with ' +
    'your remote desktop client. Starting an app you already run reconnects to it.');
  const grid = apps.length
    ? h('ul', {class: 'app-grid', 'aria-label': 'Published apps'}, apps.map((a) => appTile(ctx, a)))
    : h('p', {}, 'No apps are published to you.');
  replace(main, h('h1', {}, 'Your apps'), intro, grid);
}
