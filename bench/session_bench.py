#!/usr/bin/python3
"""Session-host benchmarks of issue 2: appvirt vs the stock FreeRDP shadow server, same run.

Figures (each side measured in the same invocation, runs interleaved where possible):
  launch    launch -> first frame matching the test pattern at rdp-probe (lossless), N launches.
            appvirt: `appvirt-hostctl launch` (user's container created, Xvfb, app, appvirt-rdp),
            then rdp-probe on the endpoint. peer: Xvfb + appvirt-testpattern + freerdp-shadow-cli
            started from nothing, then rdp-probe. Reported: total, the launch/start part, and the
            server part (rdp-probe's own connect -> matching frame).
  memory    PSS per idle session with N sessions running, each with an rdp-probe client
            connected: Xvfb + RDP server process (+ their children), app excluded.
  idle_cpu  CPU of one idle session with a connected client over S seconds (Xvfb + RDP server).
  probe_floor  rdp-probe with and without its Sleep shortcut (--stock-sleep) on a running
            session: what FreeRDP 2.11's 100 ms client connect ticks would add.
  typing    an 80x24 xterm per side; rdp-probe (default codecs: it offers RemoteFX/NSCodec,
            never GFX) types 5 characters a second for 20 s; server->client bytes from the
            server socket's `ss -ti` bytes_acked over the typing window (appvirt's endpoint
            listens on loopback TCP for this), and CPU of Xvfb + RDP server over that window.

Needs root (throwaway users, containers, cgroups), a build of the project (default
build-bench): appvirt-hostd, appvirt-hostctl, appvirt-sandbox, appvirt-rdp, rdp-probe,
appvirt-testpattern; and Xvfb + freerdp-shadow-cli (Debian: xvfb, freerdp2-shadow-x11).
Everything it creates (users, processes, cgroups, temp dirs) is removed on exit, also on
failure, SIGINT or SIGTERM. The whole run is bounded by --time-limit.

Example:  sudo bench/session_bench.py --build build-bench --json bench/last.json
"""
import argparse
import contextlib
import ctypes
import json
import os
import platform
import pwd
import secrets
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
MATCH = ["--lossless", "--expect-pattern", "0", "--wait-match"]
FIGURES = ["launch", "memory", "idle_cpu", "probe_floor", "typing"]
XTERM = ["/usr/bin/xterm", "-geometry", "80x24+0+0"]
TYPING_CHARS = 100        # 20 s at 5 characters a second
TYPING_INTERVAL_MS = 200


class BenchError(RuntimeError):
    pass


class Budget:
    """The wall-clock limit of the whole run; every wait asks it how long it may take."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()

    def check(self, what):
        if self.left() <= 0:
            raise BenchError(f"time limit reached before {what}")

    def cap(self, seconds):
        """seconds, or less if the budget ends sooner (at least 1 s so cleanup can still run)."""
        return max(1.0, min(seconds, self.left()))


BUDGET = Budget(600)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def run(cmd, timeout=60, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=BUDGET.cap(timeout), **kw)
    if r.returncode != 0:
        raise BenchError(f"{cmd[0]} {' '.join(cmd[1:3])}... exited {r.returncode}: "
                         f"{r.stdout[-1500:]} {r.stderr[-1500:]}")
    return r


def wait_for(pred, seconds, what, step=0.005):
    deadline = time.monotonic() + BUDGET.cap(seconds)
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step)
    raise BenchError(f"timed out waiting for {what}")


def stop_process(p, grace=5):
    """SIGTERM, bounded wait, SIGKILL; always reaps."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


# ---------------------------------------------------------------- /proc readers

def read(path):
    with open(path) as f:
        return f.read()


def children(pid):
    out = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [int(c) for c in read(f"/proc/{pid}/task/{tid}/children").split()]
    return out


def with_descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def pss_kib(pid):
    """{pss, anon, file, shmem} in KiB from smaps_rollup (zeros if the process is gone)."""
    keys = {"Pss:": "pss", "Pss_Anon:": "anon", "Pss_File:": "file", "Pss_Shmem:": "shmem"}
    out = dict.fromkeys(keys.values(), 0)
    with contextlib.suppress(OSError):
        for line in read(f"/proc/{pid}/smaps_rollup").splitlines():
            k = line.split(None, 1)[0]
            if k in keys:
                out[keys[k]] = int(line.split()[1])
    return out


def sum_pss(pids):
    total = dict(pss=0, anon=0, file=0, shmem=0)
    for p in pids:
        for k, v in pss_kib(p).items():
            total[k] += v
    return total


def cpu_ns(pids):
    """CPU time of the live threads of pids (schedstat, ns resolution)."""
    ns = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError, ValueError):
                    ns += int(read(f"/proc/{p}/task/{tid}/schedstat").split()[0])
    return ns


def cpu_ticks(pids):
    """utime + stime of pids (clock ticks; includes threads that already exited)."""
    t = 0
    for p in pids:
        with contextlib.suppress(OSError):
            f = read(f"/proc/{p}/stat").rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
    return t


def comm(pid):
    with contextlib.suppress(OSError):
        return read(f"/proc/{pid}/comm").strip()
    return "?"


def tcp_listening(port):
    needle = f":{port:04X} 00000000:0000 0A"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            if needle in read(table):
                return True
    return False


def free_tcp_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_of_uid(uid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.append(int(name))
    return out


def pids_mentioning(needle):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in read(f"/proc/{name}/cmdline"):
                    out.append(int(name))
    return out


def reap_orphans():
    """As a subreaper we inherit what dies under us; reap those zombies."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def write_wildcard_xauthority(path):
    """One FamilyWild MIT-MAGIC-COOKIE-1 entry with an empty display number: matches any display."""
    def field(b):
        return len(b).to_bytes(2, "big") + b
    cookie = secrets.token_bytes(16)
    with open(path, "wb") as f:
        f.write((0xFFFF).to_bytes(2, "big") + field(b"") + field(b"") +
                field(b"MIT-MAGIC-COOKIE-1") + field(cookie))
    os.chmod(path, 0o600)


# ---------------------------------------------------------------- the client

class Probe:
    """rdp-probe runs: one-shot (launch figure) or held connections with a ready pipe."""

    def __init__(self, exe):
        self.exe = exe

    def once(self, target, cookie, timeout_ms=20000, extra=()):
        cmd = [self.exe, target, *MATCH, "--timeout-ms", str(timeout_ms), *extra]
        if cookie:
            cmd += ["--cookie", cookie]
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=BUDGET.cap(timeout_ms / 1000 + 15))
        try:
            j = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise BenchError(f"rdp-probe gave no JSON: {r.stdout!r} {r.stderr[-1500:]!r}")
        if r.returncode != 0 or not j.get("match"):
            raise BenchError(f"rdp-probe on {target}: no matching frame: {j}")
        return j

    def hold(self, target, cookie, hold_s, timeout_ms=60000):
        """Starts a client that stays connected hold_s after its matching frame; returns
        (Popen, read end of its ready pipe)."""
        rfd, wfd = os.pipe()
        cmd = [self.exe, target, *MATCH, "--timeout-ms", str(timeout_ms),
               "--hold-ms", str(int(hold_s * 1000)), "--ready-fd", str(wfd)]
        if cookie:
            cmd += ["--cookie", cookie]
        try:
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True, pass_fds=(wfd,))
        finally:
            os.close(wfd)
        return p, rfd


def wait_all_ready(held, seconds):
    """Waits until every held client wrote "ready" (matching frame seen); returns seconds."""
    t0 = time.monotonic()
    pending = {rfd: p for p, rfd in held}
    deadline = t0 + BUDGET.cap(seconds)
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{len(pending)} of {len(held)} clients not connected in time")
            ready, _, _ = select.select(list(pending), [], [], left)
            for fd in ready:
                data = os.read(fd, 16)
                if not data.startswith(b"ready"):
                    # The pipe closed without "ready": the client exited; its report says why.
                    p = pending[fd]
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.wait(10)
                    out = p.stdout.read() if p.poll() is not None else "(still running)"
                    raise BenchError(f"a client failed before connecting: {out[-1500:]}")
                os.close(fd)
                del pending[fd]
    finally:
        for fd in pending:
            os.close(fd)
    return time.monotonic() - t0


def stop_held(held):
    for p, _ in held:
        stop_process(p)
        if p.stdout:
            p.stdout.close()


# ---------------------------------------------------------------- appvirt

class Appvirt:
    """A real appvirt-hostd (own state/runtime dirs and socket) and one throwaway user."""

    def __init__(self, args, tmp):
        self.args = args
        self.dir = os.path.join(tmp, "appvirt")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.user = None
        self.uid = None
        self.session_ids = []  # not yet terminated
        self.all_ids = []      # every session of this run (cgroup cleanup)
        self.hostd = None
        self.sock = os.path.join(self.dir, "run", "hostd.sock")

    def start(self):
        self.user = "avb" + secrets.token_hex(3)
        run(["useradd", "--create-home", "--shell", "/bin/sh", self.user])
        pw = pwd.getpwnam(self.user)
        self.uid = pw.pw_uid
        # Only /usr, some /etc and the home are visible in the container.
        self.app = os.path.join(pw.pw_dir, "appvirt-testpattern")
        shutil.copy(self.args.testpattern, self.app)
        os.chown(self.app, pw.pw_uid, pw.pw_gid)
        os.chmod(self.app, 0o755)
        cfg = os.path.join(self.dir, "hostd.toml")
        with open(cfg, "w") as f:
            f.write(f'state_dir = "{self.dir}/state"\nruntime_dir = "{self.dir}/run"\n'
                    f'rdp.log_level = "warn"\nrdp.listen_tcp = true\n'
                    f'[paths]\nsandbox = "{self.args.sandbox}"\nrdp = "{self.args.rdp}"\n')
        self.hostd_log = open(os.path.join(self.dir, "hostd.log"), "w")
        self.hostd = subprocess.Popen([self.args.hostd, "--config", cfg,
                                       "--terminate-sessions-on-exit"],
                                      stdout=self.hostd_log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.hostd.poll() is not None or
                 subprocess.run(self.ctl("health"), capture_output=True).returncode == 0,
                 15, "hostd health", step=0.05)
        if self.hostd.poll() is not None:
            raise BenchError(f"hostd exited {self.hostd.returncode}; see {self.hostd_log.name}")

    def ctl(self, *a):
        return [self.args.hostctl, "--socket", self.sock, *a]

    def launch(self, command=None):
        r = run(self.ctl("launch", "--user", self.user, "--app", "testpattern",
                         "--width", "1024", "--height", "768", "--", *(command or [self.app])))
        s = json.loads(r.stdout)
        self.session_ids.append(s["session_id"])
        self.all_ids.append(s["session_id"])
        return s

    @staticmethod
    def target(s):
        return s["endpoint"]["unix"], "Cookie: msts=" + s["secret"]

    def status(self, sid):
        return json.loads(run(self.ctl("status", sid)).stdout)

    def server_pids(self, sid):
        """{role: pids}: Xvfb and appvirt-rdp of the session with their children (the app is
        not included), and the app's pid."""
        pids = self.status(sid)["pids"]
        return {"xvfb": with_descendants(pids["xvfb"]),
                "server": with_descendants(pids["rdp"])}, pids["app"]

    def container_init(self):
        for p in pids_of_uid(self.uid):
            if comm(p) == "appvirt-init":
                return p
        return None

    def terminate_all(self):
        for sid in self.session_ids:
            subprocess.run(self.ctl("terminate", sid), capture_output=True, timeout=30)
        self.session_ids = []
        # The user's last session ending takes the container with it; wait for that so the
        # next launch is a cold one again.
        wait_for(lambda: not pids_of_uid(self.uid), 20, "the user's processes to end", 0.02)
        reap_orphans()

    def close(self):
        with contextlib.suppress(Exception):
            if self.hostd and self.hostd.poll() is None:
                for sid in self.session_ids:
                    subprocess.run(self.ctl("terminate", sid), capture_output=True, timeout=15)
                stop_process(self.hostd, grace=20)
        if self.hostd:
            self.hostd_log.close()
        # Whatever hostd left behind (it should leave nothing; say so if it did).
        leftovers = []
        if self.uid is not None:
            leftovers += pids_of_uid(self.uid)
        leftovers += pids_mentioning(self.dir + "/")
        for p in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        if leftovers:
            log(f"cleanup: killed {len(leftovers)} leftover processes: {leftovers}")
        time.sleep(0.2)
        reap_orphans()
        if self.user:
            remove_cgroups(f"appvirt/u-{self.user}")
            for sid in self.all_ids:
                remove_cgroups(f"appvirt/rdp/s-{sid}")
            subprocess.run(["userdel", "--remove", self.user], capture_output=True)


def cgroup_roots():
    base = "/sys/fs/cgroup"
    roots = [base]
    with contextlib.suppress(OSError):
        roots += [os.path.join(base, d) for d in os.listdir(base)
                  if os.path.isdir(os.path.join(base, d)) and not os.path.islink(os.path.join(base, d))]
    return roots


def remove_cgroups(rel):
    for root in cgroup_roots():
        top = os.path.join(root, rel)
        if not os.path.isdir(top):
            continue
        for d, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(d)


# ---------------------------------------------------------------- the peer

class ShadowSession:
    """Xvfb + appvirt-testpattern + stock freerdp-shadow-cli on a loopback port, from nothing."""

    def __init__(self, args, tmp, config_home, app=None):
        self.app_cmd = app or [args.testpattern, "--variant", "0"]
        self.args = args
        self.tmp = tmp
        self.config_home = config_home
        self.procs = []
        self.timings = {}

    def start(self):
        t0 = time.monotonic()
        self.dir = tempfile.mkdtemp(prefix="peer-", dir=self.tmp)
        xauth = os.path.join(self.dir, "Xauthority")
        write_wildcard_xauthority(xauth)
        rfd, wfd = os.pipe()
        try:
            self.xvfb = self.spawn(["Xvfb", "-displayfd", str(wfd), "-auth", xauth,
                                    "-screen", "0", "1024x768x24", "-nolisten", "tcp",
                                    "-noreset"], {}, pass_fds=(wfd,))
        finally:
            os.close(wfd)
        try:
            # -displayfd: Xvfb writes its display number and a newline (in separate writes; it
            # dies of EPIPE if the pipe closes in between) once it accepts connections.
            got = b""
            deadline = time.monotonic() + BUDGET.cap(15)
            while not got.endswith(b"\n"):
                if not select.select([rfd], [], [], max(0, deadline - time.monotonic()))[0]:
                    raise BenchError("Xvfb did not report its display: " + self.log_tail("Xvfb"))
                chunk = os.read(rfd, 16)
                if not chunk:
                    raise BenchError("Xvfb exited before reporting its display: "
                                     + self.log_tail("Xvfb"))
                got += chunk
            self.display = ":" + got.decode().strip()
        finally:
            os.close(rfd)
        self.timings["xvfb_ms"] = (time.monotonic() - t0) * 1000
        env = {"DISPLAY": self.display, "XAUTHORITY": xauth}
        self.app = self.spawn(self.app_cmd, env)
        self.port = free_tcp_port()
        # The certificate lives under $XDG_CONFIG_HOME/freerdp/shadow; it was generated once
        # by a warm-up start (as hostd generates its own once), so no key generation here.
        env.update(HOME=self.config_home, XDG_CONFIG_HOME=self.config_home)
        self.server = self.spawn(["freerdp-shadow-cli", f"/port:{self.port}",
                                  "/bind-address:127.0.0.1", "/sec:tls", "-auth"], env)
        wait_for(lambda: tcp_listening(self.port) or self.server.poll() is not None, 15,
                 "freerdp-shadow-cli to listen")
        if self.server.poll() is not None:
            raise BenchError(f"freerdp-shadow-cli exited {self.server.returncode}: "
                             + self.log_tail("freerdp-shadow-cli"))
        self.timings["start_ms"] = (time.monotonic() - t0) * 1000
        return self

    def spawn(self, cmd, env, pass_fds=()):
        e = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **env}
        logf = os.path.join(self.dir, os.path.basename(cmd[0]) + ".log")
        with open(logf, "w") as out:
            p = subprocess.Popen(cmd, env=e, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, pass_fds=pass_fds)
        self.procs.append(p)
        return p

    def log_tail(self, name):
        with contextlib.suppress(OSError):
            return read(os.path.join(self.dir, name + ".log"))[-1500:]
        return ""

    def target(self):
        return f"127.0.0.1:{self.port}", None

    def server_pids(self):
        return {"xvfb": with_descendants(self.xvfb.pid),
                "server": with_descendants(self.server.pid)}, self.app.pid

    def close(self):
        for p in reversed(self.procs):
            stop_process(p)
        self.procs = []
        if getattr(self, "dir", None):
            shutil.rmtree(self.dir, ignore_errors=True)


class Peer:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.config_home = os.path.join(tmp, "shadow-config")
        os.makedirs(self.config_home)
        self.sessions = []

    def warm_up(self):
        """One untimed start so the shadow certificate exists before anything is measured."""
        s = self.new().start()
        try:
            Probe(self.args.probe).once(*s.target())
        finally:
            self.close_all()

    def new(self, app=None):
        s = ShadowSession(self.args, self.tmp, self.config_home, app)
        self.sessions.append(s)
        return s

    def close_all(self):
        for s in self.sessions:
            s.close()
        self.sessions = []


# ---------------------------------------------------------------- figures

def one_appvirt_launch(av, probe):
    t0 = time.monotonic()
    s = av.launch()
    api_ms = (time.monotonic() - t0) * 1000
    r = probe.once(*Appvirt.target(s))
    return dict(total_ms=api_ms + r["match_ms"], start_ms=api_ms, server_ms=r["match_ms"],
                connected_ms=r["connected_ms"], first_frame_ms=r["first_frame_ms"])


def one_peer_launch(peer, probe):
    s = peer.new().start()
    r = probe.once(*s.target())
    return dict(total_ms=s.timings["start_ms"] + r["match_ms"], start_ms=s.timings["start_ms"],
                xvfb_ms=s.timings["xvfb_ms"], server_ms=r["match_ms"],
                connected_ms=r["connected_ms"], first_frame_ms=r["first_frame_ms"])


def bench_launch(args, av, peer, probe):
    """Cold launches, appvirt and peer alternating so background load hits both alike."""
    out = {"appvirt": [], "peer": [], "appvirt_warm": []}
    for i in range(args.launches):
        BUDGET.check(f"launch {i}")
        if av:
            out["appvirt"].append(one_appvirt_launch(av, probe))
            av.terminate_all()
        if peer:
            out["peer"].append(one_peer_launch(peer, probe))
            peer.close_all()
        log(f"launch {i + 1}/{args.launches}: " + ", ".join(
            f"{k} {v[-1]['total_ms']:.0f} ms" for k, v in out.items() if v))
    if av and args.warm_launches:
        # Warm: the user's container is already running (a second app of the same user).
        keeper = av.launch()
        keeper_id = keeper["session_id"]
        for i in range(args.warm_launches):
            BUDGET.check(f"warm launch {i}")
            r = one_appvirt_launch(av, probe)
            out["appvirt_warm"].append(r)
            sid = av.session_ids.pop()
            run(av.ctl("terminate", sid))
        av.session_ids = [keeper_id]
        av.terminate_all()
    return out


def measure_memory(groups):
    """Per session ({role: pids}): PSS in MiB of all roles together, and per role."""
    out = []
    for roles in groups:
        by_role = {r: {k: v / 1024 for k, v in sum_pss(p).items()} for r, p in roles.items()}
        total = {k: sum(m[k] for m in by_role.values()) for k in ("pss", "anon", "file", "shmem")}
        out.append(dict(total, roles=by_role))
    return out


def all_pids(roles):
    return [p for pids in roles.values() for p in pids]


def bench_memory(args, av, peer, probe):
    n = args.sessions
    out = {}
    hold_s = 600  # stopped explicitly once measured
    if av:
        BUDGET.check("memory (appvirt)")
        sessions = [av.launch() for _ in range(n)]
        held = [probe.hold(*Appvirt.target(s), hold_s) for s in sessions]
        try:
            connect_s = wait_all_ready(held, 120)
            time.sleep(args.settle)
            alive = sum(p.poll() is None for p, _ in held)
            groups = [av.server_pids(s["session_id"])[0] for s in sessions]
            per = measure_memory(groups)
            init = av.container_init()
            init_mem = sum_pss([init]) if init else None
            out["appvirt"] = dict(per_session=per, clients_connected=alive,
                                  clients_connect_s=connect_s,
                                  container_init_mib=(init_mem["pss"] / 1024 if init_mem else None),
                                  processes=sorted({comm(p) for g in groups for p in all_pids(g)}),
                                  load=os.getloadavg())
        finally:
            stop_held(held)
            av.terminate_all()
        log(f"memory appvirt: median {med([x['pss'] for x in out['appvirt']['per_session']]):.1f} MiB")
    if peer:
        BUDGET.check("memory (peer)")
        held = []
        try:
            shadows = [peer.new().start() for _ in range(n)]
            held = [probe.hold(*s.target(), hold_s) for s in shadows]
            connect_s = wait_all_ready(held, 180)
            time.sleep(args.settle)
            alive = sum(p.poll() is None for p, _ in held)
            groups = [s.server_pids()[0] for s in shadows]
            per = measure_memory(groups)
            out["peer"] = dict(per_session=per, clients_connected=alive,
                               clients_connect_s=connect_s,
                               processes=sorted({comm(p) for g in groups for p in all_pids(g)}),
                               load=os.getloadavg())
        finally:
            stop_held(held)
            peer.close_all()
        log(f"memory peer: median {med([x['pss'] for x in out['peer']['per_session']]):.1f} MiB")
    return out


def measure_cpu(roles, app_pid, seconds):
    """% of one core over the window: all roles (schedstat ns; ticks as a cross-check), each
    role, and the app (excluded from the figure)."""
    roles = dict(roles, app=[app_pid])
    ns0 = {r: cpu_ns(p) for r, p in roles.items()}
    t0 = cpu_ticks(all_pids(roles)) - cpu_ticks([app_pid])
    w0 = time.monotonic()
    time.sleep(seconds)
    ns1 = {r: cpu_ns(p) for r, p in roles.items()}
    t1 = cpu_ticks(all_pids(roles)) - cpu_ticks([app_pid])
    wall = time.monotonic() - w0
    pct = {r: (ns1[r] - ns0[r]) / 1e9 / wall * 100 for r in roles}
    return dict(percent=sum(v for r, v in pct.items() if r != "app"),
                percent_ticks=(t1 - t0) / CLK_TCK / wall * 100, roles=pct, seconds=wall)


def bench_idle_cpu(args, av, peer, probe):
    out = {}
    hold_s = args.cpu_seconds + args.settle + 60
    if av:
        BUDGET.check("idle cpu (appvirt)")
        s = av.launch()
        held = [probe.hold(*Appvirt.target(s), hold_s)]
        try:
            wait_all_ready(held, 60)
            time.sleep(args.settle)
            r = measure_cpu(*av.server_pids(s["session_id"]), args.cpu_seconds)
            r["client_connected"] = held[0][0].poll() is None
            r["load"] = os.getloadavg()
            out["appvirt"] = r
        finally:
            stop_held(held)
            av.terminate_all()
        log(f"idle cpu appvirt: {out['appvirt']['percent']:.3f} %")
    if peer:
        BUDGET.check("idle cpu (peer)")
        held = []
        try:
            sh = peer.new().start()
            held = [probe.hold(*sh.target(), hold_s)]
            wait_all_ready(held, 60)
            time.sleep(args.settle)
            r = measure_cpu(*sh.server_pids(), args.cpu_seconds)
            r["client_connected"] = held[0][0].poll() is None
            r["load"] = os.getloadavg()
            out["peer"] = r
        finally:
            stop_held(held)
            peer.close_all()
        log(f"idle cpu peer: {out['peer']['percent']:.3f} %")
    return out


def bench_probe_floor(args, av, peer, probe):
    """rdp-probe with and without its Sleep shortcut against one running session per side,
    alternating: how much of "connect -> frame" stock FreeRDP 2.11 client timing adds."""
    out = {}
    for side in ("appvirt", "peer"):
        if not (av if side == "appvirt" else peer):
            continue
        BUDGET.check(f"probe floor ({side})")
        if side == "appvirt":
            s = av.launch()
            target = Appvirt.target(s)
        else:
            target = peer.new().start().target()
        runs = {"shortcut": [], "stock": []}
        try:
            probe.once(*target)  # the app's first paint is not part of this figure
            for _ in range(args.floor_runs):
                for mode, extra in (("shortcut", ()), ("stock", ("--stock-sleep",))):
                    r = probe.once(*target, extra=extra)
                    runs[mode].append({k: r[k] for k in ("connected_ms", "match_ms",
                                                         "connect_sleeps", "connect_shortcuts")})
        finally:
            if side == "appvirt":
                av.terminate_all()
            else:
                peer.close_all()
        out[side] = runs
        log(f"probe floor {side}: match_ms median shortcut "
            f"{med([r['match_ms'] for r in runs['shortcut']]):.0f}, stock "
            f"{med([r['match_ms'] for r in runs['stock']]):.0f}")
    return out


def tcp_bytes_acked(port):
    """bytes_acked of the established server-side TCP socket on local port `port` (the
    server -> client payload the client has acknowledged), or None."""
    r = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
                       capture_output=True, text=True, timeout=10)
    for field in r.stdout.split():
        if field.startswith("bytes_acked:"):
            return int(field.split(":", 1)[1])
    return None


def type_and_sample(probe, target, cookie, roles, app_pid, port):
    """One rdp-probe typing TYPING_CHARS characters, one every TYPING_INTERVAL_MS, while the
    server socket's bytes_acked and the servers' CPU are sampled every 50 ms. Returns the figures
    over the typing window (first key .. last key + one interval)."""
    text = ("the quick brown fox jumps over the lazy dog " * 3)[:TYPING_CHARS]
    # --out + --settle-ms: stay connected until the last key's echo has arrived.
    cmd = [probe.exe, target, "--timeout-ms", "60000", "--type-text", text,
           "--type-interval-ms", str(TYPING_INTERVAL_MS), "--out", "/dev/null",
           "--settle-ms", "1000"]
    if cookie:
        cmd += ["--cookie", cookie]
    pids = all_pids(roles)
    samples = []
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        while p.poll() is None:
            BUDGET.check("typing")
            samples.append((time.monotonic() - t0, tcp_bytes_acked(port), cpu_ns(pids)))
            time.sleep(0.05)
        out = p.stdout.read()
    finally:
        stop_process(p)
        p.stdout.close()
    try:
        j = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(f"typing probe gave no JSON: {out[-1500:]!r}")
    if p.returncode != 0 or j.get("keys_sent") != len(text):
        raise BenchError(f"typing probe failed: {j}")
    start = j["first_key_ms"] / 1000
    end = j["last_key_ms"] / 1000 + TYPING_INTERVAL_MS / 1000
    window = [x for x in samples if start <= x[0] <= end and x[1] is not None]
    if len(window) < 2:
        raise BenchError(f"typing: too few samples in the window ({len(window)})")
    (ta, ba, ca), (tb, bb, cb) = window[0], window[-1]
    return dict(kbit_s=(bb - ba) * 8 / (tb - ta) / 1000, bytes=bb - ba, seconds=tb - ta,
                cpu_percent=(cb - ca) / 1e9 / (tb - ta) * 100, keys=j["keys_sent"],
                probe_bytes_received=j.get("bytes_received"))


def bench_typing(args, av, peer, probe):
    """An xterm per side, one client typing at 5 characters a second (PEERS.md's figure)."""
    out = {}
    if av:
        BUDGET.check("typing (appvirt)")
        s = av.launch(XTERM)
        try:
            host, port = s["endpoint"]["tcp"].rsplit(":", 1)
            roles, app_pid = av.server_pids(s["session_id"])
            probe_target = f"{host}:{port}"
            # Untimed first connection: the xterm has drawn its prompt before anything counts.
            subprocess.run([probe.exe, probe_target, "--cookie", "Cookie: msts=" + s["secret"],
                            "--timeout-ms", "20000", "--settle-ms", "1500", "--out", "/dev/null"],
                           capture_output=True, timeout=BUDGET.cap(40))
            out["appvirt"] = type_and_sample(probe, probe_target, "Cookie: msts=" + s["secret"],
                                             roles, app_pid, int(port))
        finally:
            av.terminate_all()
        log(f"typing appvirt: {out['appvirt']['kbit_s']:.2f} kbit/s")
    if peer:
        BUDGET.check("typing (peer)")
        try:
            sh = peer.new(XTERM).start()
            roles, app_pid = sh.server_pids()
            target, _ = sh.target()
            subprocess.run([probe.exe, target, "--timeout-ms", "20000", "--settle-ms", "1500",
                            "--out", "/dev/null"], capture_output=True, timeout=BUDGET.cap(40))
            out["peer"] = type_and_sample(probe, target, None, roles, app_pid, sh.port)
        finally:
            peer.close_all()
        log(f"typing peer: {out['peer']['kbit_s']:.2f} kbit/s")
    return out


# ---------------------------------------------------------------- report

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def p90(xs):
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def fmt(xs, unit="", nd=0):
    if not xs:
        return "—"
    if len(xs) == 1:
        return f"{xs[0]:.{nd}f}{unit}"
    return f"{med(xs):.{nd}f} / {p90(xs):.{nd}f}{unit}"


def report(results):
    lines = ["| figure (median / p90) | appvirt | shadow peer |", "| --- | --- | --- |"]
    L = results.get("launch")
    if L:
        for key, label in [("total_ms", "launch → matching frame, ms"),
                           ("start_ms", "  launch API (appvirt) / start until listening (peer), ms"),
                           ("server_ms", "  server part: probe connect → matching frame, ms"),
                           ("connected_ms", "  of which probe connect → RDP active, ms")]:
            lines.append(f"| {label} | {fmt([r[key] for r in L['appvirt']])} | "
                         f"{fmt([r[key] for r in L['peer']])} |")
        if L.get("appvirt_warm"):
            lines.append(f"| launch → matching frame, user's container already running, ms | "
                         f"{fmt([r['total_ms'] for r in L['appvirt_warm']])} "
                         f"(API {fmt([r['start_ms'] for r in L['appvirt_warm']])}) | — |")
        lines.append(f"| launches | {len(L['appvirt'])} (+{len(L.get('appvirt_warm', []))} warm)"
                     f" | {len(L['peer'])} |")
    M = results.get("memory")
    if M:
        def col(side, k):
            d = M.get(side)
            return fmt([x[k] for x in d["per_session"]], nd=1) if d else "—"
        lines.append(f"| PSS per idle session, MiB | {col('appvirt', 'pss')} | {col('peer', 'pss')} |")
        lines.append(f"|   anon + shmem, MiB | "
                     + " | ".join(fmt([x['anon'] + x['shmem'] for x in M[s]['per_session']], nd=1)
                                  if M.get(s) else "—" for s in ("appvirt", "peer")) + " |")
        lines.append(f"|   file, MiB | {col('appvirt', 'file')} | {col('peer', 'file')} |")
        for role, label in (("xvfb", "Xvfb"), ("server", "RDP server (appvirt-rdp / shadow-cli)")):
            lines.append(f"|   {label}: PSS (anon+shmem), MiB | " + " | ".join(
                f"{med([x['roles'][role]['pss'] for x in M[s]['per_session']]):.1f} "
                f"({med([x['roles'][role]['anon'] + x['roles'][role]['shmem'] for x in M[s]['per_session']]):.1f})"
                if M.get(s) else "—" for s in ("appvirt", "peer")) + " |")
        if M.get("appvirt") and M["appvirt"].get("container_init_mib") is not None:
            lines.append(f"|   not included: the user's container init (shared by the user's "
                         f"sessions), MiB | {M['appvirt']['container_init_mib']:.1f} | — |")
        lines.append("| sessions / clients connected at measurement | " + " | ".join(
            f"{len(M[s]['per_session'])} / {M[s]['clients_connected']}" if M.get(s) else "—"
            for s in ("appvirt", "peer")) + " |")
    C = results.get("idle_cpu")
    if C:
        lines.append("| CPU of one idle connected session, % of a core | " + " | ".join(
            f"{C[s]['percent']:.3f} (ticks: {C[s]['percent_ticks']:.2f})" if C.get(s) else "—"
            for s in ("appvirt", "peer")) + " |")
        for role in ("xvfb", "server", "app"):
            lines.append(f"|   {role}{' (not included)' if role == 'app' else ''}, % | " + " | ".join(
                f"{C[s]['roles'][role]:.3f}" if C.get(s) else "—" for s in ("appvirt", "peer"))
                + " |")
    F = results.get("probe_floor")
    if F:
        for mode, label in (("shortcut", "wakes on server data (default)"),
                            ("stock", "`--stock-sleep`, FreeRDP's 100 ms ticks")):
            lines.append(f"| running session, probe connect → matching frame, {label}, ms | "
                         + " | ".join(fmt([r["match_ms"] for r in F[s][mode]]) if F.get(s) else "—"
                                      for s in ("appvirt", "peer")) + " |")
    T = results.get("typing")
    if T:
        lines.append("| typing 5 chars/s into an xterm, server→client (ss bytes_acked), kbit/s | "
                     + " | ".join(f"{T[s]['kbit_s']:.2f} ({T[s]['bytes']} B in {T[s]['seconds']:.1f} s)"
                                  if T.get(s) else "—" for s in ("appvirt", "peer")) + " |")
        lines.append("|   CPU while typing (Xvfb + RDP server), % of a core | " + " | ".join(
            f"{T[s]['cpu_percent']:.2f}" if T.get(s) else "—" for s in ("appvirt", "peer")) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--build", default=os.path.join(repo, "build-bench"),
                    help="CMake build dir (default <repo>/build-bench)")
    ap.add_argument("--launches", type=int, default=20, help="cold launches per side (20)")
    ap.add_argument("--warm-launches", type=int, default=5,
                    help="appvirt launches with the user's container running (5; 0 = none)")
    ap.add_argument("--sessions", type=int, default=20, help="sessions for the memory figure (20)")
    ap.add_argument("--cpu-seconds", type=float, default=30, help="idle-CPU window (30)")
    ap.add_argument("--settle", type=float, default=5,
                    help="seconds after the clients' matching frame before measuring (5)")
    ap.add_argument("--floor-runs", type=int, default=8,
                    help="probe_floor: probe runs per mode and side (8)")
    ap.add_argument("--only", choices=FIGURES, action="append",
                    help="run only this figure (repeatable)")
    ap.add_argument("--side", choices=["both", "appvirt", "peer"], default="both")
    ap.add_argument("--time-limit", type=float, default=570,
                    help="whole-run limit in seconds (570); cleanup always runs")
    ap.add_argument("--json", default="", help="also write all raw numbers here")
    args = ap.parse_args()
    for k, v in (("launches", args.launches), ("sessions", args.sessions)):
        if not 1 <= v <= 50:
            ap.error(f"--{k} must be 1..50")
    b = os.path.abspath(args.build)
    args.hostd = f"{b}/session-host/hostd/appvirt-hostd"
    args.hostctl = f"{b}/session-host/hostd/appvirt-hostctl"
    args.sandbox = f"{b}/session-host/sandbox/appvirt-sandbox"
    args.rdp = f"{b}/session-host/rdp/appvirt-rdp"
    args.probe = f"{b}/tests/tools/rdp-probe"
    args.testpattern = f"{b}/tests/tools/appvirt-testpattern"
    return args


def check_tools(args, sides):
    need = [args.probe, args.testpattern]
    if "appvirt" in sides:
        need += [args.hostd, args.hostctl, args.sandbox, args.rdp]
    missing = [p for p in need if not os.access(p, os.X_OK)]
    if "peer" in sides:
        missing += [t for t in ("Xvfb", "freerdp-shadow-cli") if not shutil.which(t)]
    if missing:
        raise BenchError("missing: " + ", ".join(missing))
    if os.geteuid() != 0:
        raise BenchError("run as root (users, containers, cgroups)")


def machine():
    return dict(nproc=os.cpu_count(), kernel=platform.release(),
                date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                cpu=next((l.split(":", 1)[1].strip() for l in read("/proc/cpuinfo").splitlines()
                          if l.startswith("model name")), "?"),
                mem_total_mib=int(read("/proc/meminfo").split()[1]) // 1024,
                load_at_start=os.getloadavg())


def on_signal(signum, _frame):
    raise SystemExit(f"signal {signum}")


def main():
    global BUDGET
    args = parse_args()
    BUDGET = Budget(args.time_limit)
    sides = ["appvirt", "peer"] if args.side == "both" else [args.side]
    only = args.only or FIGURES
    check_tools(args, sides)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    # Orphans of hostd's sessions become ours, not init's, if anything goes wrong.
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    results = {"machine": machine(), "command": " ".join(sys.argv), "args": {
        k: v for k, v in vars(args).items() if k in ("launches", "warm_launches", "sessions",
                                                       "cpu_seconds", "settle", "side",
                                                       "floor_runs")}}
    tmp = tempfile.mkdtemp(prefix="avbench-")
    os.chmod(tmp, 0o755)
    av = peer = None
    probe = Probe(args.probe)
    failed = None
    try:
        if "peer" in sides:
            peer = Peer(args, tmp)
            peer.warm_up()
        if "appvirt" in sides:
            av = Appvirt(args, tmp)
            av.start()
        for fig, fn in (("launch", bench_launch), ("memory", bench_memory),
                        ("idle_cpu", bench_idle_cpu), ("probe_floor", bench_probe_floor),
                        ("typing", bench_typing)):
            if fig in only:
                log(f"figure {fig}")
                results[fig] = fn(args, av, peer, probe)
    except (BenchError, subprocess.TimeoutExpired, KeyboardInterrupt, SystemExit) as e:
        failed = f"{type(e).__name__}: {e}"
        log("FAILED:", failed)
    finally:
        if peer:
            peer.close_all()
        if av:
            av.close()
        reap_orphans()
        if av and os.path.exists(os.path.join(av.dir, "hostd.log")) and failed:
            log("hostd log tail:\n" + read(os.path.join(av.dir, "hostd.log"))[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    results["failed"] = failed
    results["load_at_end"] = os.getloadavg()
    print(report(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
