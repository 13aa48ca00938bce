// The web portal in a real browser (Debian's chromium, headless, driven by playwright-core)
// against the real broker, hostd and gateway (stack.mjs). The scenarios run in order and share
// the stack: sign-in errors and lockout, the app grid, a launch whose downloaded .rdp token the
// gateway accepts (rdp-probe sees the app's pixels through it), my sessions with reconnect and
// log off, admin pages refused to a user (UI and API), the admin's session list, hosts and log
// off, and the policy editor's inline validation errors, save, history, rollback and resolve.
// A screenshot of each page goes to $PORTAL_ARTIFACTS.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {createRequire} from 'node:module';
import path from 'node:path';
import {after, before, test} from 'node:test';

import {Stack, brokerRequest, eventually, need} from './stack.mjs';

const {chromium} = createRequire(`${need('PORTAL_NODE_MODULES')}/`)('playwright-core');

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const artifacts = need('PORTAL_ARTIFACTS');
const stack = new Stack();
let browser = null;
let alicePage = null;
let adminPage = null;
const browserProblems = [];  // CSP violations and uncaught script errors, from every page

// Whatever happens (ctest's timeout, Ctrl-C, a hang), the users and processes go away.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => { stack.stopSync(); process.exit(1); });
}
setTimeout(() => {
  console.error('portal_e2e: overall deadline (540 s) reached');
  stack.stopSync();
  process.exit(1);
}, 540000).unref();

before(async () => {
  fs.mkdirSync(artifacts, {recursive: true});
  for (const f of fs.readdirSync(artifacts)) if (f.endsWith('.png')) fs.rmSync(path.join(artifacts, f));
  await stack.start();
  browser = await chromium.launch({executablePath: need('CHROMIUM'), headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage']});
}, {timeout: 120000});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  await stack.stop();
  console.log(`portal_e2e: screenshots and daemon logs in ${artifacts}`);
}, {timeout: 120000});

async function newPage() {
  const context = await browser.newContext({baseURL: stack.baseUrl, ignoreHTTPSErrors: true,
    acceptDownloads: true, viewport: {width: 1200, height: 800}});
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('console', (msg) => {
    if (/Content.Security.Policy|Refused to (execute|apply|load)/i.test(msg.text())) browserProblems.push(msg.text());
  });
  page.on('pageerror', (e) => browserProblems.push(`uncaught: ${e.message}`));
  await page.goto('/');
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

async function shot(page, name) {
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({path: file, fullPage: true});
  console.log(`screenshot: ${file}`);
}

async function signIn(page, user, password) {
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', {name: 'Sign in'}).click();
}

const text = (page, selector) => page.locator(selector).innerText();

// Clicks, waits for the download it starts and returns the file's text.
async function downloadFrom(page, click, name) {
  const [download] = await Promise.all([page.waitForEvent('download', {timeout: 60000}), click()]);
  const file = path.join(stack.dir, name);
  await download.saveAs(file);
  return {text: fs.readFileSync(file, 'utf8'), suggested: download.suggestedFilename()};
}

function rdpField(rdp, key) {
  const line = rdp.split(/\r?\n/).find((l) => l.startsWith(`${key}:`));
  return line ? line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1) : null;
}

async function expectTokenAccepted(rdp, tag) {
  assert.equal(rdpField(rdp, 'full address'), `127.0.0.1:${stack.gatewayPort}`);
  const cookie = rdpField(rdp, 'loadbalanceinfo');
  assert.match(cookie || '', /^Cookie: msts=[A-Za-z0-9_-]{40,}$/, `loadbalanceinfo: ${cookie}`);
  const run = await stack.probe(cookie, tag);
  assert.equal(run.code, 0, `rdp-probe through the gateway: ${JSON.stringify(run.report)}\n${stack.log('gateway').slice(-3000)}`);
  assert.equal(run.report.connected, true);
  assert.equal(run.report.match, true, 'the session shows the test pattern through the gateway');
  return cookie;
}

async function liveSessionsOf(user) {
  const sessions = await stack.hostdSessions();
  return sessions.filter((s) => s.user === user && s.state !== 'ended');
}

test('the broker serves the portal with security headers and no path out of its root', async () => {
  const page = await brokerRequest(stack.brokerPort, 'GET', '/');
  assert.equal(page.status, 200);
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(page.headers['content-security-policy'], CSP);
  assert.equal(page.headers['x-frame-options'], 'DENY');
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.equal(page.headers['referrer-policy'], 'no-referrer');
  assert.ok(page.headers.etag, 'static files carry an ETag');
  const again = await brokerRequest(stack.brokerPort, 'GET', '/', {headers: {'If-None-Match': page.headers.etag}});
  assert.equal(again.status, 304);
  for (const [file, type] of [['/js/app.js', 'text/javascript; charset=utf-8'],
    ['/css/portal.css', 'text/css; charset=utf-8'], ['/icons/xterm.svg', 'image/svg+xml']]) {
    const r = await brokerRequest(stack.brokerPort, 'GET', file);
    assert.equal(r.status, 200, file);
    assert.equal(r.headers['content-type'], type, file);
  }
  const api = await brokerRequest(stack.brokerPort, 'GET', '/api/v1/me');
  assert.equal(api.status, 401);
  assert.equal(api.headers['cache-control'], 'no-store');
  assert.equal(api.headers['x-frame-options'], 'DENY');
  assert.ok(api.headers['content-security-policy']);
  for (const target of ['/../../../../etc/passwd', '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '/js/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd', '/%2fetc%2fpasswd', '//etc/passwd', '/..%2f..%2fetc/passwd']) {
    const r = await brokerRequest(stack.brokerPort, 'GET', target);
    assert.equal(r.status, 404, target);
    assert.ok(!r.body.includes('root:'), target);
  }
});

test('a wrong password gets a clear message', async () => {
  const page = await newPage();
  await signIn(page, stack.alice.name, 'not-the-password');
  await page.locator('#login-error', {hasText: 'Wrong user name or password.'}).waitFor();
  assert.equal(await page.locator('#login-error').getAttribute('role'), 'alert');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'password', 'focus back on the password');
  await shot(page, '01-sign-in-wrong-password');
  await page.context().close();
});

test('a locked-out user is told when to try again', async () => {
  const page = await newPage();
  let message = '';
  for (let attempt = 0; attempt < 6 && !message.includes('Too many'); ++attempt) {
    await signIn(page, stack.lockme.name, `wrong-${attempt}`);
    await page.locator('#login-error', {hasText: /Wrong user name|Too many/}).waitFor();
    message = await text(page, '#login-error');
  }
  assert.match(message, /^Too many failed sign-ins\. Try again in \d+ (seconds|minutes) \(at .+\)\.$/);
  // Even the right password is refused while the lock lasts, with the same message.
  await signIn(page, stack.lockme.name, stack.lockme.password);
  await page.locator('#login-error', {hasText: 'Too many failed sign-ins'}).waitFor();
  await shot(page, '02-sign-in-locked-out');
  await page.context().close();
});

test('a user signs in with the keyboard alone and sees the published apps with icons', async () => {
  alicePage = await newPage();
  const page = alicePage;
  assert.equal(await page.evaluate(() => document.activeElement.id), 'username', 'the form starts in its first field');
  await page.keyboard.type(stack.alice.name);
  await page.keyboard.press('Tab');
  await page.keyboard.type(stack.alice.password);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', {level: 1, name: 'Your apps'}).waitFor();
  await page.locator('.app-tile').first().waitFor();
  const names = await page.locator('.app-name').allInnerTexts();
  assert.deepEqual(names, ['Test pattern', 'XTerm', 'Clock']);
  const icons = await page.locator('.app-launch img').evaluateAll((imgs) => imgs.map((i) => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]));
  assert.deepEqual(icons, [['icons/testpattern.svg', true], ['icons/xterm.svg', true], ['icons/xclock.svg', true]]);
  assert.equal(await text(page, '#account-name'), `Signed in as ${stack.alice.name}`);
  assert.equal(await page.locator('.admin-only').first().isHidden(), true, 'no admin links for a user');
  assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1', 'focus moves to the page heading');
  await shot(page, '03-apps');
});

test('launching shows progress, then the downloaded .rdp token is accepted by the gateway', async () => {
  const page = alicePage;
  const tile = page.getByRole('button', {name: 'Open Test pattern'});
  await tile.focus();
  const busy = page.waitForSelector('.app-launch[aria-busy="true"]', {timeout: 10000});
  const {text: rdp, suggested} = await downloadFrom(page, () => page.keyboard.press('Enter'), 'launch-1.rdp');
  await busy;  // the tile said "starting…" while the broker started the session
  assert.equal(suggested, 'testpattern.rdp');
  assert.equal(rdpField(rdp, 'username'), stack.alice.name);
  await page.locator('#status', {hasText: 'Test pattern is ready'}).waitFor();
  await shot(page, '04-launched');
  await expectTokenAccepted(rdp, 'launch-1');
  assert.equal((await liveSessionsOf(stack.alice.name)).length, 1);
});

test('my sessions shows the running session; reconnect reattaches to it', async () => {
  const page = alicePage;
  await page.getByRole('link', {name: 'My sessions'}).click();
  const row = page.locator('#my-sessions tbody tr', {hasText: 'Test pattern'});
  await row.waitFor();
  assert.match(await row.innerText(), /Running|Disconnected/);
  await shot(page, '05-my-sessions');
  const {text: rdp} = await downloadFrom(page, () => row.getByRole('button', {name: 'Reconnect to Test pattern'}).click(), 'reconnect.rdp');
  await page.locator('#status', {hasText: '(your running session)'}).waitFor();
  await expectTokenAccepted(rdp, 'reconnect');
  assert.equal((await liveSessionsOf(stack.alice.name)).length, 1, 'the same session, not a new one');
});

test('a user cannot open the admin pages or call the admin API', async () => {
  const page = alicePage;
  for (const route of ['admin/sessions', 'admin/hosts', 'admin/policy']) {
    await page.goto('/#/apps');
    await page.getByRole('heading', {level: 1, name: 'Your apps'}).waitFor();
    await page.goto(`/#/${route}`);
    await page.getByRole('heading', {level: 1, name: 'Not available'}).waitFor();
    assert.equal(await text(page, '[role="alert"]'), 'Admin rights are required for this page.');
  }
  await shot(page, '06-admin-refused');
  const statuses = await page.evaluate(async () => {
    const me = await (await fetch('/api/v1/me')).json();
    const out = {};
    for (const p of ['/api/v1/admin/sessions', '/api/v1/admin/hosts', '/api/v1/admin/audit',
      '/api/v1/admin/policies', '/api/v1/admin/policies/history', '/api/v1/admin/policies/resolve?user=root']) {
      out[`GET ${p}`] = (await fetch(p)).status;
    }
    const change = {'X-CSRF-Token': me.csrf_token, 'Content-Type': 'application/json'};
    out['DELETE session'] = (await fetch('/api/v1/admin/sessions/x', {method: 'DELETE', headers: change})).status;
    out['PUT policies'] = (await fetch('/api/v1/admin/policies', {method: 'PUT', headers: change, body: '{}'})).status;
    out['POST rollback'] = (await fetch('/api/v1/admin/policies/rollback', {method: 'POST', headers: change, body: '{"version":1}'})).status;
    return out;
  });
  for (const [call, status] of Object.entries(statuses)) assert.equal(status, 403, call);
});

test('the admin sees hosts and all sessions, and logs a session off', async () => {
  adminPage = await newPage();
  const page = adminPage;
  await signIn(page, stack.adam.name, stack.adam.password);
  await page.getByRole('heading', {level: 1, name: 'Your apps'}).waitFor();
  assert.equal(await page.getByRole('link', {name: 'All sessions'}).isVisible(), true);
  await page.getByRole('link', {name: 'Hosts'}).click();
  const host = page.locator('#hosts tbody tr', {hasText: 'local'});
  await host.waitFor();
  assert.match(await host.innerText(), /Up/);
  await shot(page, '07-admin-hosts');

  await page.getByRole('link', {name: 'All sessions'}).click();
  const row = page.locator('#all-sessions tbody tr', {hasText: stack.alice.name});
  await row.waitFor();
  assert.match(await row.innerText(), /Test pattern/);
  assert.match(await row.innerText(), /Running|Disconnected/);
  await shot(page, '08-admin-sessions');
  const [id] = (await liveSessionsOf(stack.alice.name)).map((s) => s.session_id);
  await row.getByRole('button', {name: `Log off ${stack.alice.name}'s Test pattern session`}).click();
  await page.locator('#status', {hasText: 'was logged off'}).waitFor();
  await page.locator('#all-sessions tbody tr', {hasText: stack.alice.name}).waitFor({state: 'detached'});
  await shot(page, '09-admin-logged-off');
  const ended = await eventually(async () => (await liveSessionsOf(stack.alice.name)).length === 0, 15000);
  assert.ok(ended, `hostd still runs session ${id}`);
});

test('a user logs off their own session', async () => {
  const page = alicePage;
  await page.getByRole('link', {name: 'Apps'}).click();
  await downloadFrom(page, () => page.getByRole('button', {name: 'Open Test pattern'}).click(), 'launch-2.rdp');
  await page.getByRole('link', {name: 'My sessions'}).click();
  const row = page.locator('#my-sessions tbody tr', {hasText: 'Test pattern'});
  await row.waitFor();
  await row.getByRole('button', {name: 'Log off Test pattern'}).click();
  await page.locator('#status', {hasText: 'Test pattern was logged off.'}).waitFor();
  await page.getByText('You have no running sessions.').waitFor();
  await shot(page, '10-my-sessions-logged-off');
  assert.ok(await eventually(async () => (await liveSessionsOf(stack.alice.name)).length === 0, 15000));
});

test('the policy editor shows validation errors inline, saves, rolls back and resolves', async () => {
  const page = adminPage;
  await page.getByRole('link', {name: 'Policy'}).click();
  await page.getByRole('heading', {level: 1, name: 'Policy'}).waitFor();
  const editor = page.getByLabel('Policy (JSON)');
  await editor.waitFor({timeout: 10000}).catch(async () => {
    assert.fail(`the policy admin API did not answer: ${await text(page, 'main')}`);
  });
  const before = await text(page, '#policy-current');

  await editor.fill(JSON.stringify({defaults: {memory_max: '8M'}}, null, 2));
  await page.getByRole('button', {name: 'Save'}).click();
  const error = page.locator('#policy-errors li', {hasText: 'defaults.memory_max'});
  await error.waitFor();
  assert.equal(await editor.getAttribute('aria-invalid'), 'true');
  assert.equal(await text(page, '#policy-current'), before, 'a refused edit leaves the version in force');
  await shot(page, '11-policy-error');

  const policy = {defaults: {memory_max: '1G'}, groups: {[stack.staff]: {priority: 0, memory_max: '2G'}}};
  await editor.fill(JSON.stringify(policy, null, 2));
  await page.getByLabel('Comment (optional)').fill('staff get 2G');
  await page.getByRole('button', {name: 'Save'}).click();
  await page.locator('#status', {hasText: /Policy saved as version \d+\./}).waitFor();
  const saved = Number(/version (\d+)/.exec(await text(page, '#status'))[1]);
  assert.equal(await page.locator('#policy-errors li').count(), 0);
  await page.locator('#policy-history tbody tr', {hasText: 'staff get 2G'}).waitFor();

  await page.getByLabel('User name').fill(stack.alice.name);
  await page.getByRole('button', {name: 'Show'}).click();
  const memory = page.locator('#resolve-table tbody tr', {hasText: 'memory_max'});
  await memory.waitFor();
  assert.match(await memory.innerText(), new RegExp(`2G\\s+group:${stack.staff}`));
  await shot(page, '12-policy-saved-and-resolved');

  const previous = saved - 1;
  await page.getByRole('button', {name: `Roll back to version ${previous}`}).click();
  await page.locator('#status', {hasText: `has the content of version ${previous}`}).waitFor();
  await page.locator('#policy-current', {hasText: `Version ${saved + 1}`}).waitFor();
  assert.ok(!(await editor.inputValue()).includes('2G'), 'the editor shows the rolled-back content');
  await shot(page, '13-policy-rolled-back');
});

test('no page broke the Content-Security-Policy or threw a script error', () => {
  assert.deepEqual(browserProblems, []);
});
