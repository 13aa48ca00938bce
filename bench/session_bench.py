#!/usr/bin/python3
"""Session-host benchmarks: appvirt vs the naive shadow server, measured in the same run.

Figures (issue 2):
  launch   launch API call -> first frame matching the test pattern at rdp-probe (N launches)
  memory   PSS per idle connected session with N sessions (Xvfb + RDP server, app excluded)
  idle_cpu CPU of one idle connected session over S seconds (Xvfb + RDP server)

Peer: Xvfb + the stock `freerdp-shadow-cli` on the same display, the same test-pattern app and
the same client (rdp-probe, lossless planar/interleaved). Run as root from the repo root after a
build:  /usr/bin/python3 bench/session_bench.py --build build
Prints a Markdown table and writes JSON to --json.
"""
import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def pss_kib(pid):
    """PSS of one process in KiB from smaps_rollup (0 if gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def probe(args, target, cookie, extra=(), timeout_ms=20000):
    cmd = [args.probe, "--target", target, "--cookie", cookie, "--lossless",
           "--timeout-ms", str(timeout_ms), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_ms / 1000 + 30)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"rdp-probe gave no JSON: {out.stdout!r} {out.stderr[-2000:]!r}")


class Appvirt:
    """A real appvirt-hostd with a throwaway user; sessions run the test-pattern app."""

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="avbench-")
        os.chmod(self.tmp, 0o755)
        self.user = "avb" + secrets.token_hex(3)
        home = os.path.join(self.tmp, "home")
        run(["useradd", "--create-home", "--home-dir", home, "--shell", "/bin/sh", self.user])
        self.app = os.path.join(home, "appvirt-testpattern")
        shutil.copy(args.testpattern, self.app)
        pw = pwd.getpwnam(self.user)
        os.chown(self.app, pw.pw_uid, pw.pw_gid)
        self.sock = os.path.join(self.tmp, "hostd.sock")
        cfg = os.path.join(self.tmp, "hostd.toml")
        with open(cfg, "w") as f:
            f.write(f'state_dir = "{self.tmp}/state"\nruntime_dir = "{self.tmp}/run"\n'
                    f'control_socket = "{self.sock}"\n')
        self.log = open(os.path.join(self.tmp, "hostd.log"), "w")
        self.hostd = subprocess.Popen([args.hostd, "--config", cfg, "--terminate-sessions-on-exit"],
                                      stderr=self.log, stdout=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(self.ctl("health"), capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("hostd did not come up; see " + self.log.name)

    def ctl(self, *a):
        return [self.args.hostctl, "--socket", self.sock, *a]

    def launch(self):
        out = run(self.ctl("launch", "--user", self.user, "--app", "testpattern",
                           "--width", "1024", "--height", "768", "--", self.app))
        return json.loads(out.stdout)

    def status(self, sid):
        return json.loads(run(self.ctl("status", sid)).stdout)

    def terminate(self, sid):
        run(self.ctl("terminate", sid))

    def server_pids(self, sid):
        pids = self.status(sid)["pids"]
        return [pids["xvfb"], pids["rdp"]]

    def close(self):
        self.hostd.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.hostd.wait(20)
        subprocess.run(["userdel", "--remove", self.user], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Shadow:
    """The peer: Xvfb + test-pattern app + stock freerdp-shadow-cli on a loopback TCP port."""

    def __init__(self, args, display):
        self.display = display
        self.port = free_port()
        env = dict(os.environ, DISPLAY=f":{display}")
        env.pop("XAUTHORITY", None)
        self.procs = []
        self.xvfb = self.spawn(["Xvfb", f":{display}", "-screen", "0", "1024x768x24", "-nolisten",
                                "tcp"], env)
        wait_for(lambda: os.path.exists(f"/tmp/.X11-unix/X{display}"), 10)
        self.spawn([args.testpattern], env)
        self.server = self.spawn(["freerdp-shadow-cli", f"/port:{self.port}",
                                  "/bind-address:127.0.0.1", "-auth", "/sec:tls"], env)
        wait_for(lambda: port_open(self.port), 10)

    def spawn(self, cmd, env):
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def target(self):
        return f"127.0.0.1:{self.port}"

    def server_pids(self):
        return [self.xvfb.pid, self.server.pid]

    def close(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
            if p.poll() is None:
                p.kill()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(pred, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise RuntimeError("timed out waiting")


def free_display(start):
    n = start
    while os.path.exists(f"/tmp/.X11-unix/X{n}") or os.path.exists(f"/tmp/.X{n}-lock"):
        n += 1
    return n


MATCH = ["--expect-pattern", "0", "--wait-match"]


def bench_launch(args, av):
    """Launch API call -> matching frame at rdp-probe, then logoff; returns ms per launch."""
    appvirt_ms, shadow_ms = [], []
    for i in range(args.launches):
        t0 = time.monotonic()
        s = av.launch()
        r = probe(args, s["endpoint"]["unix"], "Cookie: msts=" + s["secret"], MATCH)
        if not r.get("match"):
            raise RuntimeError(f"appvirt launch {i}: no matching frame: {r}")
        appvirt_ms.append((time.monotonic() - t0) * 1000)
        av.terminate(s["session_id"])
    for i in range(args.launches):
        t0 = time.monotonic()
        sh = Shadow(args, free_display(600))
        try:
            r = probe(args, sh.target(), "Cookie: mstshash=bench", MATCH)
            if not r.get("match"):
                raise RuntimeError(f"shadow launch {i}: no matching frame: {r}")
            shadow_ms.append((time.monotonic() - t0) * 1000)
        finally:
            sh.close()
    return appvirt_ms, shadow_ms


def hold(args, target, cookie, seconds):
    return subprocess.Popen([args.probe, "--target", target, "--cookie", cookie, "--lossless",
                             "--timeout-ms", str(int(seconds * 1000) + 30000),
                             "--hold-ms", str(int(seconds * 1000)), *MATCH],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def settle_and_measure_pss(pid_groups, settle):
    time.sleep(settle)
    return [sum(pss_kib(p) for p in pids) / 1024 for pids in pid_groups]


def bench_memory(args, av):
    """PSS (MiB) of Xvfb + RDP server per session, N sessions, each with a client connected."""
    n, hold_s = args.sessions, 20
    sessions = [av.launch() for _ in range(n)]
    clients = [hold(args, s["endpoint"]["unix"], "Cookie: msts=" + s["secret"], hold_s)
               for s in sessions]
    appvirt = settle_and_measure_pss([av.server_pids(s["session_id"]) for s in sessions], 12)
    for c in clients:
        c.wait()
    for s in sessions:
        av.terminate(s["session_id"])
    shadows = [Shadow(args, free_display(600 + 3 * i)) for i in range(n)]
    try:
        clients = [hold(args, sh.target(), "Cookie: mstshash=bench", hold_s) for sh in shadows]
        shadow = settle_and_measure_pss([sh.server_pids() for sh in shadows], 12)
        for c in clients:
            c.wait()
    finally:
        for sh in shadows:
            sh.close()
    return appvirt, shadow


def cpu_percent(pids, seconds):
    before = sum(cpu_ticks(p) for p in pids)
    time.sleep(seconds)
    after = sum(cpu_ticks(p) for p in pids)
    return (after - before) / CLK_TCK / seconds * 100


def bench_idle_cpu(args, av):
    s = av.launch()
    c = hold(args, s["endpoint"]["unix"], "Cookie: msts=" + s["secret"], args.cpu_seconds + 8)
    time.sleep(5)
    appvirt = cpu_percent(av.server_pids(s["session_id"]), args.cpu_seconds)
    c.wait()
    av.terminate(s["session_id"])
    sh = Shadow(args, free_display(600))
    try:
        c = hold(args, sh.target(), "Cookie: mstshash=bench", args.cpu_seconds + 8)
        time.sleep(5)
        shadow = cpu_percent(sh.server_pids(), args.cpu_seconds)
        c.wait()
    finally:
        sh.close()
    return appvirt, shadow


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--launches", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--cpu-seconds", type=int, default=30)
    ap.add_argument("--only", choices=["launch", "memory", "idle_cpu"], action="append")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    b = args.build
    args.hostd = f"{b}/session-host/hostd/appvirt-hostd"
    args.hostctl = f"{b}/session-host/hostd/appvirt-hostctl"
    args.probe = f"{b}/tests/tools/rdp-probe"
    args.testpattern = f"{b}/tests/tools/appvirt-testpattern"
    only = set(args.only or ["launch", "memory", "idle_cpu"])
    results = {}
    av = Appvirt(args)
    try:
        if "launch" in only:
            results["launch_ms"] = bench_launch(args, av)
        if "memory" in only:
            results["pss_mib"] = bench_memory(args, av)
        if "idle_cpu" in only:
            results["idle_cpu_percent"] = bench_idle_cpu(args, av)
    finally:
        av.close()
    print("| figure | appvirt (median) | shadow peer (median) | runs |")
    print("| --- | --- | --- | --- |")
    for key, (a, s) in results.items():
        a = a if isinstance(a, list) else [a]
        s = s if isinstance(s, list) else [s]
        print(f"| {key} | {statistics.median(a):.2f} | {statistics.median(s):.2f} | "
              f"{len(a)} / {len(s)} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
