// hostd's building blocks: Xauthority format, display allocation, process identity, spawning,
// the helper runners against stand-in scripts, limits and state round trips.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "session-host/hostd/child_reaper.h"
#include "session-host/hostd/display_alloc.h"
#include "session-host/hostd/limits.h"
#include "session-host/hostd/pipe_io.h"
#include "session-host/hostd/process.h"
#include "session-host/hostd/rdp_launcher.h"
#include "session-host/hostd/sandbox_runner.h"
#include "session-host/hostd/session.h"
#include "session-host/hostd/session_manager.h"
#include "session-host/hostd/xauth.h"

namespace appvirt::hostd {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hostd-parts-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name, const std::string& text, mode_t mode = 0644) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }

 private:
  std::string path_;
};

template <class T>
T run_co(asio::awaitable<T> aw) {
  asio::io_context io;
  std::optional<T> out;
  asio::co_spawn(io, std::move(aw), [&](std::exception_ptr, T v) { out = std::move(v); });
  io.run_for(20s);
  EXPECT_TRUE(out.has_value());
  return std::move(*out);
}

TEST(XauthTest, EntryHasTheXauthorityLayout) {
  XCookie cookie;
  for (size_t i = 0; i < cookie.size(); ++i) cookie[i] = static_cast<uint8_t>(i);
  std::string e = xauthority_entry(201, cookie);
  // family 0xffff, address "", number "201", name, 16-byte cookie
  std::string want("\xff\xff\x00\x00\x00\x03" "201" "\x00\x12" "MIT-MAGIC-COOKIE-1" "\x00\x10", 31);
  ASSERT_EQ(e.size(), want.size() + 16);
  EXPECT_EQ(e.substr(0, want.size()), want);
  EXPECT_EQ(e.substr(want.size()), std::string(cookie.begin(), cookie.end()));
}

TEST(XauthTest, XauthToolReadsTheFile) {
  TempDir dir;
  auto cookie = random_cookie();
  ASSERT_TRUE(cookie);
  std::string path = dir.path() + "/Xauthority";
  ASSERT_TRUE(write_xauthority(path, 345, *cookie, ::geteuid(), ::getegid()));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string out_file = dir.path() + "/list.txt";
  std::string cmd = "xauth -f " + path + " list > " + out_file + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(out_file);
  std::string line;
  std::getline(in, line);
  std::string hex;
  for (uint8_t b : *cookie) {
    char h[3];
    std::snprintf(h, sizeof(h), "%02x", b);
    hex += h;
  }
  EXPECT_NE(line.find(":345"), std::string::npos) << line;
  EXPECT_NE(line.find("MIT-MAGIC-COOKIE-1"), std::string::npos) << line;
  EXPECT_NE(line.find(hex), std::string::npos) << line;
}

TEST(XauthTest, RandomHexIsRandomAndSized) {
  auto a = random_hex(32), b = random_hex(32);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 64u);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(DisplayAllocTest, SkipsOwnAndHostNumbers) {
  std::set<int> host = {10, 12};
  DisplayAllocator d(10, 14, [&] { return host; });
  EXPECT_EQ(d.allocate(), 11);
  EXPECT_EQ(d.allocate(), 13);
  EXPECT_TRUE(d.reserve(14));
  EXPECT_FALSE(d.reserve(14));
  EXPECT_EQ(d.allocate(), std::nullopt);
  d.release(11);
  EXPECT_EQ(d.allocate(), 11);
}

TEST(DisplayAllocTest, HostProbeSeesLockFilesAndSockets) {
  // A lock file name no real X server uses on a test machine.
  std::string lock = "/tmp/.X64999-lock";
  std::ofstream(lock) << "      1\n";
  auto used = host_displays_in_use();
  ::unlink(lock.c_str());
  EXPECT_TRUE(used.count(64999));
  EXPECT_FALSE(host_displays_in_use().count(64999));
}

TEST(ProcessTest, StartTimeIdentifiesAProcess) {
  auto self = proc_ref(::getpid());
  ASSERT_TRUE(self);
  EXPECT_TRUE(proc_alive(*self));
  EXPECT_FALSE(proc_alive(ProcRef{self->pid, self->start_time + 1}));
  EXPECT_FALSE(proc_start_time(0));
  EXPECT_FALSE(proc_start_time(-5));
}

TEST(ProcessTest, SpawnRunsInItsOwnSessionWithGivenFdsAndEnv) {
  TempDir dir;
  auto out = make_pipe();
  ASSERT_TRUE(out);
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "echo \"$FOO $(ps -o sid= -p $$) $$\"; echo extra >&3"};
  o.env = {"FOO=bar", "PATH=/usr/bin:/bin"};
  o.stdout_fd = out->second.get();
  o.extra_fds = {out->second.get()};
  auto pid = spawn_process(o);
  ASSERT_TRUE(pid) << pid.error().str();
  out->second.reset();
  auto text = run_co(async_read_pipe(std::move(out->first), 5s, false));
  ASSERT_TRUE(text) << text.error().str();
  int status = 0;
  ASSERT_EQ(::waitpid(*pid, &status, 0), *pid);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::istringstream in(*text);
  std::string foo, sid, self, extra;
  in >> foo >> sid >> self >> extra;
  EXPECT_EQ(foo, "bar");
  EXPECT_EQ(sid, self);  // session leader: setsid() ran
  EXPECT_EQ(extra, "extra");
}

TEST(ProcessTest, SpawnReportsExecFailure) {
  SpawnOptions o;
  o.argv = {"/nonexistent/program"};
  auto pid = spawn_process(o);
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().err, ENOENT);
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

TEST(ProcessTest, PipeReadTimesOut) {
  auto p = make_pipe();
  ASSERT_TRUE(p);
  auto start = std::chrono::steady_clock::now();
  auto r = run_co(async_read_pipe(std::move(p->first), 200ms, false));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("timed out"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(ChildReaperTest, RecordsExitStatusOnSigchld) {
  asio::io_context io;
  ChildReaper reaper(io.get_executor());
  reaper.start();
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "exit 7"};
  auto pid = spawn_process(o);
  ASSERT_TRUE(pid);
  for (int i = 0; i < 200 && !reaper.status_of(*pid); ++i) io.run_for(10ms);
  auto st = reaper.status_of(*pid);
  reaper.stop();
  ASSERT_TRUE(st);
  EXPECT_EQ(describe_wait_status(*st), "exit 7");
}

// A stand-in for appvirt-sandbox: checks its verb and stdin, prints a canned reply.
TEST(HelperSandboxRunnerTest, SpeaksTheJsonContract) {
  TempDir dir;
  std::string req_copy = dir.path() + "/req.json";
  std::string helper = dir.file("helper", "#!/bin/sh\ncat > " + req_copy + "\n"
                                "if [ \"$1\" = create ]; then echo '{\"ok\":true,\"init_pid\":'$$',\"init_start_time\":42}';\n"
                                "else echo '{\"ok\":true,\"pid\":4242}'; fi\n", 0755);
  HelperSandboxRunner runner(helper, 5s);
  ContainerSpec spec;
  spec.user = "alice";
  spec.uid = 1001;
  spec.limits.memory_max = 64ull << 20;
  auto init = run_co(runner.create(spec));
  ASSERT_TRUE(init) << init.error().str();
  EXPECT_GT(init->pid, 0);
  EXPECT_EQ(init->start_time, 42u);
  std::ifstream in(req_copy);
  auto sent = nlohmann::json::parse(in);
  EXPECT_EQ(sent["user"], "alice");
  EXPECT_EQ(sent["uid"], 1001);
  EXPECT_EQ(sent["limits"]["memory_max"], 64u << 20);
  ExecSpec ex;
  ex.argv = {"/bin/true"};
  auto pid = run_co(runner.exec(ex));
  ASSERT_TRUE(pid);
  EXPECT_EQ(*pid, 4242);
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

TEST(HelperSandboxRunnerTest, ReportsHelperErrorsGarbageAndHangs) {
  TempDir dir;
  auto run = [&](const std::string& body, std::chrono::milliseconds timeout) {
    std::string helper = dir.file("h" + std::to_string(body.size()), "#!/bin/sh\n" + body + "\n", 0755);
    HelperSandboxRunner runner(helper, timeout);
    auto r = run_co(runner.exec(ExecSpec{}));
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    return r ? std::string("ok") : r.error().str();
  };
  EXPECT_NE(run("cat >/dev/null; echo '{\"ok\":false,\"error\":\"setns failed\"}'; exit 1", 5s)
                .find("setns failed"),
            std::string::npos);
  EXPECT_NE(run("echo not json", 5s).find("no JSON reply"), std::string::npos);
  EXPECT_NE(run("exec sleep 10", 300ms).find("timed out"), std::string::npos);
  HelperSandboxRunner missing(dir.path() + "/missing", 1s);
  auto r = run_co(missing.create(ContainerSpec{}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT);
}

TEST(RdpLauncherTest, WaitsForTheReadyLineOnFd3) {
  TempDir dir;
  std::string args = dir.path() + "/args";
  std::string rdp = dir.file("rdp", "#!/bin/sh\necho \"$@\" > " + args +
                                        "\necho '{\"ready\":true,\"tcp_port\":4567}' >&3\nexec sleep 30\n",
                             0755);
  ProcessRdpLauncher launcher(rdp, 5s);
  RdpSpec spec;
  spec.display = 201;
  spec.listen = "/x/rdp.sock";
  spec.listen_tcp = true;
  spec.secret_file = "/x/secret";
  spec.log_file = dir.path() + "/rdp.log";
  auto ep = run_co(launcher.launch(spec));
  ASSERT_TRUE(ep) << ep.error().str();
  EXPECT_EQ(ep->tcp_port, 4567);
  EXPECT_TRUE(proc_alive(ep->proc));
  ::kill(ep->proc.pid, SIGKILL);
  ::waitpid(ep->proc.pid, nullptr, 0);
  std::ifstream in(args);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "--display :201 --x11-dir  --xauthority  --listen /x/rdp.sock --listen-tcp "
                  "127.0.0.1:0 --secret-file /x/secret --cert  --key  --run-as  --ready-fd 3 "
                  "--log-level info");
}

TEST(RdpLauncherTest, FailsWhenTheEndpointDiesBeforeReady) {
  TempDir dir;
  std::string rdp = dir.file("rdp", "#!/bin/sh\necho 'cannot bind' >&2\nexit 3\n", 0755);
  ProcessRdpLauncher launcher(rdp, 5s);
  RdpSpec spec;
  spec.log_file = dir.path() + "/rdp.log";
  auto ep = run_co(launcher.launch(spec));
  ASSERT_FALSE(ep);
  EXPECT_NE(ep.error().message.find("exited before it was ready"), std::string::npos);
  std::ifstream log(spec.log_file);
  std::string text;
  std::getline(log, text);
  EXPECT_EQ(text, "cannot bind");
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

TEST(LimitsTest, JsonRoundTripAndMerge) {
  auto l = limits_from_json(nlohmann::json::parse(R"({"memory_max":"1G","cpu_max_percent":150})"));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->memory_max, 1ull << 30);
  EXPECT_EQ(limits_to_json(*l), nlohmann::json::parse(R"({"memory_max":1073741824,"cpu_max_percent":150})"));
  Limits d;
  d.memory_max = 1;
  d.pids_max = 50;
  Limits m = merge_limits(*l, d);
  EXPECT_EQ(m.memory_max, 1ull << 30);
  EXPECT_EQ(m.pids_max, 50);
  EXPECT_FALSE(limits_from_json(nlohmann::json::parse(R"({"memory_max":1000})")));
  EXPECT_FALSE(limits_from_json(nlohmann::json::parse(R"({"pids_max":1.5})")));
}

// A VM session's QEMU: memory is QEMU's own ceiling, cpu is the session's, pids a fixed cap
// (the policy's pids_max counts processes inside the guest, not QEMU's threads).
TEST(LimitsTest, VmQemuLimitsTakeCpuFromTheSessionAndBoundQemuItself) {
  Limits session;
  session.memory_max = 2ull << 30;
  session.cpu_weight = 300;
  session.cpu_max_percent = 150;
  session.pids_max = 20;
  Limits q = vm_qemu_limits(session, 512 + 384);
  EXPECT_EQ(q.memory_max, 896ull << 20);
  EXPECT_EQ(q.cpu_weight, 300);
  EXPECT_EQ(q.cpu_max_percent, 150);
  EXPECT_EQ(q.pids_max, kVmQemuPidsMax);
  Limits none = vm_qemu_limits(Limits{}, 256);
  EXPECT_FALSE(none.cpu_weight);
  EXPECT_FALSE(none.cpu_max_percent);
  EXPECT_EQ(none.memory_max, 256ull << 20);
}

TEST(SessionStateTest, RoundTripsThroughJson) {
  Session s;
  s.id = "0011223344556677";
  s.user = "alice";
  s.uid = 1001;
  s.gid = 1001;
  s.app_id = "xterm";
  s.command = {"/usr/bin/xterm", "-e", "top"};
  s.limits.pids_max = 99;
  s.width = 800;
  s.height = 600;
  s.display = 201;
  s.state = SessionState::running;
  s.app = {10, 11};
  s.xvfb = {12, 13};
  s.rdp = {14, 15};
  s.endpoint_unix = "/run/appvirt/s/x/rdp.sock";
  s.tcp_port = 3390;
  s.created_at = 1700000000;
  s.exit_status = 256;
  auto back = session_from_state(session_to_state(s));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(session_to_state(*back), session_to_state(s));
  auto api = session_to_api(s);
  EXPECT_EQ(api["created_at"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(api["endpoint"]["tcp"], "127.0.0.1:3390");
  EXPECT_FALSE(session_from_state(nlohmann::json::parse(R"({"session_id":"x"})")));
}

TEST(RemoveTreeTest, RemovesPlainTreesAndRefusesRoot) {
  TempDir dir;
  fs::create_directories(dir.path() + "/a/b/c");
  std::ofstream(dir.path() + "/a/b/c/f") << "x";
  ASSERT_TRUE(remove_tree_safely(dir.path() + "/a"));
  EXPECT_FALSE(fs::exists(dir.path() + "/a"));
  EXPECT_FALSE(remove_tree_safely("/"));
  EXPECT_TRUE(remove_tree_safely(dir.path() + "/missing"));
}

}  // namespace
}  // namespace appvirt::hostd
