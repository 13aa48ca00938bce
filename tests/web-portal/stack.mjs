// The real appvirt stack for the portal's browser test, under one temporary directory:
// appvirt-hostd (containers), appvirt-broker (real PAM under a private service name, serving
// web-portal/ at "/") and appvirt-gateway (the broker's internal secret), plus PAM users and
// groups made for the test. stop() removes everything it made — processes, sessions, cgroups,
// users, groups, the PAM file, the directory — and also runs from signal handlers (synchronously)
// so an interrupted run leaves nothing behind. Needs root.
import {spawn, spawnSync} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';

export function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run through ctest / run_browser_test.sh)`);
  return value;
}

const sleepArray = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms) { Atomics.wait(sleepArray, 0, 0, ms); }
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function run(cmd, args, input) {
  const r = spawnSync(cmd, args, {input, encoding: 'utf8', timeout: 30000});
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error}`);
  return r.stdout;
}

// Polls fn (sync or async) until it returns a truthy value or `ms` pass; returns the value or null.
export async function eventually(fn, ms = 15000, step = 100) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch { /* not yet */ }
    if (Date.now() > end) return null;
    await sleep(step);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address();
      server.close(() => resolve(port));
    });
  });
}

// One HTTPS request to the broker (its certificate is self-signed); raw path, no normalisation.
export function brokerRequest(port, method, target, {body, headers = {}} = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({host: '127.0.0.1', port, method, path: target, rejectUnauthorized: false,
      headers: {...headers, ...(body === undefined ? {} : {'Content-Type': 'application/json'})},
      timeout: 30000}, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({status: res.statusCode, headers: res.headers,
        body: Buffer.concat(chunks).toString('utf8')}));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${target}: timeout`)));
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

function hostdRequest(socketPath, target) {
  return new Promise((resolve, reject) => {
    const req = http.request({socketPath, path: target, method: 'GET', timeout: 5000}, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({status: res.statusCode, body: Buffer.concat(chunks).toString('utf8')}));
    });
    req.on('timeout', () => req.destroy(new Error('hostd timeout')));
    req.on('error', reject);
    req.end();
  });
}

function pidsOfUid(uid) {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.statSync(`/proc/${name}`).uid === uid) out.push(Number(name));
    } catch { /* gone */ }
  }
  return out;
}

// Exited (or a zombie waiting for the event loop to reap it).
function gone(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

function removeCgroup(relative) {
  const roots = ['/sys/fs/cgroup'];
  try {
    for (const e of fs.readdirSync('/sys/fs/cgroup', {withFileTypes: true})) {
      if (e.isDirectory()) roots.push(path.join('/sys/fs/cgroup', e.name));
    }
  } catch { /* no cgroup fs */ }
  const removeTree = (dir) => {
    let entries = [];
    try { entries = fs.readdirSync(dir, {withFileTypes: true}); } catch { return; }
    for (const e of entries) if (e.isDirectory()) removeTree(path.join(dir, e.name));
    try { fs.rmdirSync(dir); } catch { /* busy or gone */ }
  };
  for (const root of roots) removeTree(path.join(root, relative));
}

const suffix = crypto.randomBytes(3).toString('hex');

export class Stack {
  constructor() {
    this.bin = {
      broker: need('APPVIRT_BROKER'), hostd: need('APPVIRT_HOSTD'), sandbox: need('APPVIRT_SANDBOX'),
      rdp: need('APPVIRT_RDP'), gateway: need('APPVIRT_GATEWAY'), testpattern: need('APPVIRT_TESTPATTERN'),
      probe: need('RDP_PROBE'), pamFile: need('APPVIRT_PAM_FILE'), webRoot: need('PORTAL_WEB_ROOT'),
    };
    this.artifacts = need('PORTAL_ARTIFACTS');
    this.dir = '';
    this.groups = [];
    this.users = [];        // {name, password, uid, home}
    this.children = {};     // name -> ChildProcess
    this.sessionIds = new Set();
    this.pamService = '';
    this.stopped = false;
  }

  group(prefix) {
    const name = `${prefix}${suffix}`;
    run('groupadd', [name]);
    this.groups.push(name);
    return name;
  }

  user(prefix, groups) {
    const name = `${prefix}${suffix}`;
    const password = crypto.randomBytes(12).toString('base64url');
    run('useradd', ['--create-home', '--shell', '/bin/bash', ...(groups.length ? ['-G', groups.join(',')] : []), name]);
    const entry = {name, password, uid: -1, home: ''};
    this.users.push(entry);
    run('chpasswd', [], `${name}:${password}\n`);
    const pw = run('getent', ['passwd', name]).trim().split(':');
    entry.uid = Number(pw[2]);
    entry.home = pw[5];
    // Only /usr, some of /etc and the home are visible in the container: the app goes in the home.
    const app = path.join(entry.home, 'appvirt-testpattern');
    fs.copyFileSync(this.bin.testpattern, app);
    const st = fs.statSync(entry.home);
    fs.chownSync(app, st.uid, st.gid);
    fs.chmodSync(app, 0o755);
    return entry;
  }

  spawnDaemon(name, args, {stdout = 'ignore'} = {}) {
    const log = fs.openSync(path.join(this.dir, `${name}.log`), 'w');
    const out = stdout === 'file' ? fs.openSync(path.join(this.dir, `${name}.out`), 'w') : 'ignore';
    const child = spawn(args[0], args.slice(1), {stdio: ['ignore', out, log]});
    fs.closeSync(log);
    if (typeof out === 'number') fs.closeSync(out);
    this.children[name] = child;
    return child;
  }

  log(name) {
    try { return fs.readFileSync(path.join(this.dir, `${name}.log`), 'utf8'); } catch { return ''; }
  }

  async start() {
    if (process.geteuid() !== 0) throw new Error('the portal browser test needs root');
    this.dir = fs.mkdtempSync('/tmp/portal-e2e-');
    fs.chmodSync(this.dir, 0o755);
    this.pamService = `appvirt-portal-${suffix}`;
    fs.copyFileSync(this.bin.pamFile, `/etc/pam.d/${this.pamService}`);
    this.staff = this.group('avps');
    this.admins = this.group('avpa');
    this.alice = this.user('avpu', [this.staff]);          // a user with apps
    this.adam = this.user('avpd', [this.staff, this.admins]);  // an admin
    this.lockme = this.user('avpl', []);                    // locked out on purpose
    const secret = crypto.randomBytes(32).toString('hex');
    fs.writeFileSync(path.join(this.dir, 'gateway.secret'), `${secret}\n`, {mode: 0o600});
    fs.writeFileSync(path.join(this.dir, 'host.secret'), `${crypto.randomBytes(32).toString('hex')}\n`, {mode: 0o600});
    this.gatewayPort = await freePort();
    await this.startHostd();
    await this.startBroker();
    await this.startGateway();
  }

  async startHostd() {
    this.socket = path.join(this.dir, 'run', 'hostd.sock');
    fs.writeFileSync(path.join(this.dir, 'hostd.toml'),
      `state_dir = "${this.dir}/hostd"\nruntime_dir = "${this.dir}/run"\n` +
      `[paths]\nsandbox = "${this.bin.sandbox}"\nrdp = "${this.bin.rdp}"\n`);
    this.spawnDaemon('hostd', [this.bin.hostd, '--config', path.join(this.dir, 'hostd.toml'),
      '--terminate-sessions-on-exit']);
    const up = await eventually(async () => (await hostdRequest(this.socket, '/v1/health')).status === 200, 20000);
    if (!up) throw new Error(`appvirt-hostd did not start:\n${this.log('hostd')}`);
  }

  brokerConfig() {
    const pattern = '["/bin/sh", "-c", "exec \\"$HOME/appvirt-testpattern\\" --variant 0"]';
    return `state_dir = "${this.dir}/broker"
gateway_address = "127.0.0.1:${this.gatewayPort}"
pam_service = "${this.pamService}"
admin_group = "${this.admins}"
log_level = "debug"
[web]
root = "${this.bin.webRoot}"
[listen]
address = "127.0.0.1"
port = 0
[lockout]
max_failures_per_user = 3
max_failures_per_address = 1000
lockout_seconds = 240
[internal]
gateway_secret_file = "${this.dir}/gateway.secret"
host_secret_file = "${this.dir}/host.secret"
host_poll_interval_ms = 1000
[[hosts]]
name = "local"
socket = "${this.socket}"
capacity = 4
[[apps]]
id = "testpattern"
name = "Test pattern"
command = ${pattern}
groups = ["${this.staff}"]
[[apps]]
id = "xterm"
name = "XTerm"
icon = "xterm.svg"
command = ["/usr/bin/xterm"]
groups = ["${this.staff}"]
[[apps]]
id = "xclock"
name = "Clock"
command = ["/usr/bin/xclock"]
users = ["*"]
`;
  }

  async startBroker() {
    const config = path.join(this.dir, 'broker.toml');
    fs.writeFileSync(config, this.brokerConfig());
    const portFile = path.join(this.dir, 'broker.port');
    this.spawnDaemon('broker', [this.bin.broker, '--config', config, '--port-file', portFile]);
    const port = await eventually(() => fs.existsSync(portFile) && Number(fs.readFileSync(portFile, 'utf8')), 20000);
    if (!port) throw new Error(`appvirt-broker did not start:\n${this.log('broker')}`);
    this.brokerPort = port;
    this.baseUrl = `https://127.0.0.1:${port}`;
    const hostUp = await eventually(async () => {
      const r = await brokerRequest(port, 'GET', '/healthz');
      return r.status === 200 && JSON.parse(r.body).hosts_up === 1;
    }, 20000);
    if (!hostUp) throw new Error(`the broker does not see hostd:\n${this.log('broker')}`);
  }

  async startGateway() {
    const config = path.join(this.dir, 'gateway.toml');
    fs.writeFileSync(config, `log_level = "debug"
[listen]
address = "127.0.0.1"
port = ${this.gatewayPort}
[broker]
url = "https://127.0.0.1:${this.brokerPort}"
ca_file = "${this.dir}/broker/tls/broker.crt"
secret_file = "${this.dir}/gateway.secret"
timeout_ms = 5000
logon_timeout_ms = 30000
[logon]
cert_file = "${this.dir}/logon.crt"
key_file = "${this.dir}/logon.key"
cert_common_name = "127.0.0.1"
`);
    this.spawnDaemon('gateway', [this.bin.gateway, '--config', config], {stdout: 'file'});
    const listening = await eventually(() => new Promise((resolve) => {
      const s = net.connect(this.gatewayPort, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    }), 20000);
    if (!listening) throw new Error(`appvirt-gateway did not start:\n${this.log('gateway')}`);
  }

  // rdp-probe through the gateway with the cookie line of an .rdp file; resolves to its report.
  probe(cookie, tag) {
    return new Promise((resolve) => {
      const args = [`127.0.0.1:${this.gatewayPort}`, '--cookie', cookie, '--lossless',
        '--expect-pattern', '0', '--wait-match', '--timeout-ms', '30000', '--log-level', 'off'];
      const child = spawn(this.bin.probe, args, {stdio: ['ignore', 'pipe', 'pipe']});
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { err += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 45000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        fs.writeFileSync(path.join(this.dir, `probe-${tag}.json`), out);
        let report = null;
        try { report = JSON.parse(out); } catch { report = null; }
        resolve({code, report, stderr: err});
      });
    });
  }

  async hostdSessions() {
    const r = await hostdRequest(this.socket, '/v1/sessions');
    const sessions = JSON.parse(r.body).sessions || [];
    for (const s of sessions) this.sessionIds.add(s.session_id);
    return sessions;
  }

  // Keeps the daemons' logs next to the screenshots, for a failed run.
  saveLogs() {
    for (const name of ['hostd', 'broker', 'gateway']) {
      try { fs.copyFileSync(path.join(this.dir, `${name}.log`), path.join(this.artifacts, `${name}.log`)); } catch { /* none */ }
    }
  }

  async stop() {
    if (this.stopped) return;
    if (this.socket) {
      try { await this.hostdSessions(); } catch { /* hostd down */ }
    }
    for (const name of ['gateway', 'broker', 'hostd']) {
      const child = this.children[name];
      if (!child || child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      // hostd ends every session first (--terminate-sessions-on-exit).
      const ok = await Promise.race([exited.then(() => true), sleep(20000).then(() => false)]);
      if (!ok) child.kill('SIGKILL');
    }
    this.stopSync();
  }

  // The synchronous part (and all of it when called from a signal handler).
  stopSync() {
    if (this.stopped) return;
    this.stopped = true;
    for (const child of Object.values(this.children)) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      try { process.kill(child.pid, 'SIGTERM'); } catch { /* gone */ }
      for (let i = 0; i < 100 && !gone(child.pid); ++i) sleepSync(100);
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    for (const u of this.users) {
      if (u.uid < 0) continue;
      for (let i = 0; i < 50; ++i) {
        const pids = pidsOfUid(u.uid).filter((p) => !gone(p));
        if (!pids.length) break;
        for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
        sleepSync(100);
      }
    }
    for (const u of this.users) removeCgroup(`appvirt/u-${u.name}`);
    for (const id of this.sessionIds) removeCgroup(`appvirt/rdp/s-${id}`);
    if (this.dir) this.saveLogs();
    for (const u of this.users) spawnSync('userdel', ['--remove', '--force', u.name], {stdio: 'ignore'});
    for (const g of this.groups) spawnSync('groupdel', [g], {stdio: 'ignore'});
    if (this.pamService) fs.rmSync(`/etc/pam.d/${this.pamService}`, {force: true});
    if (this.dir) fs.rmSync(this.dir, {recursive: true, force: true});
  }
}
