// The portal's shell: who is signed in, the navigation, and a hash router (#/apps,
// #/sessions, #/admin/...). Each page module exports render(main, ctx); the router moves focus
// to the new page's heading so keyboard and screen reader users land on the content.
import * as api from './api.js';
import {h, replace, status} from './dom.js';
import * as loginPage from './pages/login.js';
import * as appsPage from './pages/apps.js';
import * as sessionsPage from './pages/sessions.js';
import * as adminSessionsPage from './pages/admin_sessions.js';
import * as adminHostsPage from './pages/admin_hosts.js';
import * as adminPolicyPage from './pages/admin_policy.js';

const routes = {
  'apps': {page: appsPage},
  'sessions': {page: sessionsPage},
  'admin/sessions': {page: adminSessionsPage, admin: true},
  'admin/hosts': {page: adminHostsPage, admin: true},
  'admin/policy': {page: adminPolicyPage, admin: true},
};

const ctx = {
  me: null,  // {user, admin, groups, csrf_token} once signed in
  signedIn(me) {
    this.me = me;
    api.setCsrfToken(me.csrf_token);
    showAccount();
    if (!location.hash || location.hash === '#/login') location.hash = '#/apps';
    else render();
  },
  // An API answer of 401 anywhere: the browser session ended (expired, broker restarted).
  expired() {
    this.me = null;
    api.setCsrfToken('');
    showAccount();
    status('Your session has ended. Please sign in again.', 'error');
    render();
  },
  navigate(route) { location.hash = `#/${route}`; },
};

function showAccount() {
  const me = ctx.me;
  document.getElementById('nav').hidden = !me;
  document.getElementById('account').hidden = !me;
  document.getElementById('account-name').textContent = me ? `Signed in as ${me.user}` : '';
  for (const li of document.querySelectorAll('.admin-only')) li.hidden = !(me && me.admin);
}

function currentRoute() {
  const route = location.hash.replace(/^#\/?/, '');
  return route || 'apps';
}

function markCurrent(route) {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.route === route) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function render() {
  const main = document.getElementById('main');
  if (!ctx.me) {
    markCurrent('');
    await loginPage.render(main, ctx);  // focuses the user name field itself
    document.title = 'Sign in · appvirt';
    return;
  }
  const name = currentRoute();
  const route = routes[name];
  markCurrent(name);
  if (!route) {
    replace(main, h('h1', {tabindex: '-1'}, 'Page not found'),
      h('p', {}, h('a', {href: '#/apps'}, 'Back to your apps')));
  } else if (route.admin && !ctx.me.admin) {
    // The API refuses these calls anyway (403); the page says so instead of showing empty tables.
    replace(main, h('h1', {tabindex: '-1'}, 'Not available'),
      h('p', {class: 'error', role: 'alert'}, 'Admin rights are required for this page.'));
  } else {
    await route.page.render(main, ctx);
  }
  focusHeading(main);
}

function focusHeading(main) {
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
    document.title = `${heading.textContent} · appvirt`;
  }
}

async function signOut() {
  try {
    await api.post('/api/v1/logout');
  } catch (e) {
    if (e.status !== 401) status(`Sign-out failed: ${e.message}`, 'error');
  }
  ctx.me = null;
  api.setCsrfToken('');
  showAccount();
  status('You are signed out.');
  location.hash = '#/login';
  render();
}

async function start() {
  document.getElementById('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', () => { render(); });
  try {
    ctx.me = await api.get('/api/v1/me');
    api.setCsrfToken(ctx.me.csrf_token);
  } catch (e) {
    ctx.me = null;
    if (e.status !== 401) status(`The broker did not answer: ${e.message}`, 'error');
  }
  showAccount();
  document.body.dataset.ready = 'true';
  render();
}

start();
