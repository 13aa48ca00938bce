// The real appvirt-sandbox helper (root): a throwaway user's container, the isolation probe run
// inside it with `exec`, limits that bite, and a destroy that leaves nothing behind.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "session-host/sandbox/cgroup.h"
#include "session-host/sandbox/container.h"
#include "tests/session-host/sandbox/root_test_support.h"

namespace appvirt::sandbox {
namespace {

using namespace testing;
using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Mount points (field 5 of mountinfo) of this namespace under dir.
std::vector<std::string> mounts_under(const std::string& dir) {
  std::vector<std::string> out;
  std::istringstream in(read_text("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    if (mount_point.rfind(dir, 0) == 0) out.push_back(mount_point);
  }
  return out;
}

class SandboxRootTest : public ::testing::Test {
 protected:
  static inline std::unique_ptr<ThrowawayUser> user_;
  static inline std::string user_error_;

  static void SetUpTestSuite() {
    // Like hostd: orphaned container inits come to us, so the test can reap and check them.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    try {
      user_ = std::make_unique<ThrowawayUser>();
      fs::copy_file(APPVIRT_ISOLATION_PROBE_BIN, user_->home() + "/isolation_probe");
      ::chown((user_->home() + "/isolation_probe").c_str(), user_->uid(), user_->gid());
      ::chmod((user_->home() + "/isolation_probe").c_str(), 0755);
      // Another user's files, readable by anyone on the host: must simply not exist inside.
      fs::create_directories(user_->base() + "/home/other");
      std::ofstream(user_->base() + "/home/other/secret.txt") << "secret\n";
    } catch (const std::exception& e) {
      user_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { user_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(user_) << "throwaway user: " << user_error_;
    auto d = CgroupDriver::detect(linux_sys());
    ASSERT_TRUE(d) << d.error().str();
    cgroups_ = std::move(*d);
    runtime_dir_ = user_->base() + "/run-" + random_suffix(6);
  }

  void TearDown() override {
    if (init_pid_ > 0) destroy();
  }

  json create_request(const Limits& limits) {
    return {{"user", user_->name()},
            {"uid", user_->uid()},
            {"gid", user_->gid()},
            {"groups", {user_->gid()}},
            {"home", user_->home()},
            {"runtime_dir", runtime_dir_},
            {"cgroup", user_cgroup()},
            {"hostname", "avt-box"},
            {"network", "loopback"},
            {"limits", limits_to_json(limits)},
            {"log_file", runtime_dir_ + ".init.log"}};
  }

  // Creates the container; returns the helper's reply.
  json create(const Limits& limits) {
    RunResult r = run_command({APPVIRT_SANDBOX_BIN, "create"}, create_request(limits).dump());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    json reply = json::parse(r.out, nullptr, false);
    EXPECT_TRUE(reply.is_object()) << r.out;
    if (reply.value("ok", false)) {
      init_pid_ = reply["init_pid"];
      init_start_ = reply["init_start_time"];
    }
    return reply;
  }

  json exec_request(const std::string& session, std::vector<std::string> argv,
                    const std::string& log) {
    return {{"init_pid", init_pid_},
            {"init_start_time", init_start_},
            {"uid", user_->uid()},
            {"gid", user_->gid()},
            {"groups", {user_->gid()}},
            {"cgroup", user_cgroup() + "/" + session},
            {"argv", argv},
            {"env", {"HOME=" + user_->home(), "PATH=/usr/bin:/bin"}},
            {"cwd", user_->home()},
            {"log_file", log}};
  }

  json exec(const json& request) {
    RunResult r = run_command({APPVIRT_SANDBOX_BIN, "exec"}, request.dump());
    json reply = json::parse(r.out, nullptr, false);
    EXPECT_TRUE(reply.is_object()) << r.out << r.err;
    return reply;
  }

  // Runs the probe in a session and returns the JSON line it printed.
  json run_probe(const std::string& session, std::vector<std::string> args,
                 std::chrono::milliseconds timeout = 20s) {
    std::string log = runtime_dir_ + "." + session + ".log";
    args.insert(args.begin(), user_->home() + "/isolation_probe");
    json reply = exec(exec_request(session, args, log));
    EXPECT_EQ(reply.value("ok", false), true) << reply.dump();
    if (!reply.value("ok", false)) return json();
    pid_t pid = reply["pid"];
    EXPECT_TRUE(wait_until([&] { return !process_alive(pid); }, timeout)) << "probe still runs";
    std::string out = read_text(log);
    json result = json::parse(out.substr(0, out.find('\n')), nullptr, false);
    EXPECT_TRUE(result.is_object()) << "probe output: " << out;
    if (std::getenv("APPVIRT_TEST_VERBOSE")) std::cerr << session << ": " << out;
    return result;
  }

  std::string user_cgroup() const { return "avt-test-" + suffix_ + "/u-" + user_->name(); }
  std::string top_cgroup() const { return "avt-test-" + suffix_; }

  bool init_alive() const {
    auto start = process_start_time(linux_sys(), init_pid_);
    return process_alive(init_pid_) && start && *start == init_start_;
  }

  // What hostd does at logoff, then the checks that nothing is left.
  void destroy() {
    auto k = cgroups_->kill_all(top_cgroup());
    EXPECT_TRUE(k) << k.error().str();
    int status = 0;
    bool reaped =
        wait_until([&] { return ::waitpid(init_pid_, &status, WNOHANG) == init_pid_; }, 5s);
    EXPECT_TRUE(reaped) << "container init " << init_pid_ << " did not end";
    EXPECT_FALSE(process_alive(init_pid_));
    auto left = cgroups_->procs(top_cgroup());
    EXPECT_TRUE(left && left->empty());
    auto r = cgroups_->remove(top_cgroup());
    EXPECT_TRUE(r) << r.error().str();
    EXPECT_FALSE(cgroups_->exists(top_cgroup()));
    if (cgroups_->version() == CgroupVersion::v1) {
      for (const std::string& c : cgroup_v1_controllers()) {
        EXPECT_FALSE(fs::exists(cgroups_->root() + "/" + c + "/" + top_cgroup())) << c;
      }
    }
    EXPECT_TRUE(mounts_under(runtime_dir_).empty()) << "host sees mounts of the container";
    std::error_code ec;
    fs::remove_all(runtime_dir_, ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_FALSE(fs::exists(runtime_dir_));
    init_pid_ = 0;
  }

  std::unique_ptr<CgroupDriver> cgroups_;
  std::string suffix_ = random_suffix(8);
  std::string runtime_dir_;
  pid_t init_pid_ = 0;
  uint64_t init_start_ = 0;
};

Limits default_limits() {
  Limits l;
  l.memory_max = 256ull << 20;
  l.pids_max = 128;
  l.cpu_max_percent = 100;
  return l;
}

TEST_F(SandboxRootTest, IsolationProbe) {
  json created = create(default_limits());
  ASSERT_TRUE(created.value("ok", false)) << created.dump();
  ASSERT_TRUE(init_alive());

  // A host TCP listener on 127.0.0.1: another network namespace must not reach it.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);

  std::string other = user_->base() + "/home/other/secret.txt";
  json p = run_probe("s-probe", {"check",
                                 "--host-pid",
                                 std::to_string(::getpid()),
                                 "--port",
                                 std::to_string(port),
                                 "--read",
                                 "/etc/shadow",
                                 "--read",
                                 "/etc/gshadow",
                                 "--read",
                                 "/root",
                                 "--read",
                                 other,
                                 "--read",
                                 "/etc/passwd",
                                 "--read",
                                 "/proc/1/environ",
                                 "--write",
                                 "/etc/passwd",
                                 "--write",
                                 "/usr/probe",
                                 "--write",
                                 "/probe",
                                 "--write",
                                 "/tmp/probe",
                                 "--write",
                                 user_->home() + "/probe",
                                 "--write",
                                 "/sys/fs/cgroup/pids/pids.max",
                                 "--write",
                                 "/sys/fs/cgroup/memory.max"});
  ASSERT_TRUE(p.is_object());

  // Identity: the user, no capabilities anywhere, no_new_privs, seccomp filter mode.
  EXPECT_EQ(p["uid"], user_->uid());
  EXPECT_EQ(p["euid"], user_->uid());
  EXPECT_EQ(p["gid"], user_->gid());
  EXPECT_EQ(p["groups"], json::array({user_->gid()}));
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(p["status"][cap], "0000000000000000") << cap;
  }
  EXPECT_EQ(p["status"]["NoNewPrivs"], "1");
  EXPECT_EQ(p["status"]["Seccomp"], "2");
  EXPECT_EQ(p["hostname"], "avt-box");

  // Processes: only the container's. pid 1 is our init, the probe is the only other one.
  std::set<int> pids(p["pids"].begin(), p["pids"].end());
  EXPECT_EQ(pids, (std::set<int>{1, p["self_pid"].get<int>()})) << p["pids"].dump();
  EXPECT_EQ(p["pid1_comm"], "appvirt-init");
  EXPECT_EQ(p["kill_init_rc"], 0) << "the kernel accepts it ...";
  EXPECT_TRUE(init_alive()) << "... and ignores it: pid 1 has no SIGKILL handler";

  // Files: no secrets, no other homes, read-only system, writable home and /tmp.
  json reads = p["reads"];
  EXPECT_EQ(reads["/etc/shadow"], ENOENT);
  EXPECT_EQ(reads["/etc/gshadow"], ENOENT);
  EXPECT_EQ(reads["/root"], ENOENT);
  EXPECT_EQ(reads[other], ENOENT);
  EXPECT_EQ(reads["/etc/passwd"], 0);
  EXPECT_NE(reads["/proc/1/environ"], 0) << "init's memory belongs to root's view";
  json writes = p["writes"];
  EXPECT_NE(writes["/etc/passwd"], 0);
  EXPECT_NE(writes["/usr/probe"], 0);
  EXPECT_NE(writes["/probe"], 0);
  EXPECT_EQ(writes["/tmp/probe"], 0);
  EXPECT_EQ(writes[user_->home() + "/probe"], 0);
  EXPECT_TRUE(fs::exists(user_->home() + "/probe")) << "the home is the real one";
  EXPECT_NE(writes["/sys/fs/cgroup/pids/pids.max"], 0);
  EXPECT_NE(writes["/sys/fs/cgroup/memory.max"], 0);
  std::set<std::string> root_entries(p["root_entries"].begin(), p["root_entries"].end());
  EXPECT_FALSE(root_entries.count("home"));
  EXPECT_FALSE(root_entries.count("root"));
  EXPECT_FALSE(root_entries.count("sys"));
  EXPECT_FALSE(root_entries.count("work"));
  EXPECT_TRUE(root_entries.count("usr"));

  // Network: loopback only, up, and the host's listener is out of reach.
  EXPECT_EQ(p["interfaces"], json::array({"lo"}));
  EXPECT_EQ(p["lo_up"], true);
  EXPECT_EQ(p["connect_errno"], ECONNREFUSED);
  EXPECT_LT(::accept(listener, nullptr, nullptr), 0) << "a connection reached the host";
  ::close(listener);

  // Escapes: all refused.
  EXPECT_EQ(p["ptrace_host_errno"], EPERM);
  EXPECT_EQ(p["ptrace_init_errno"], EPERM);
  EXPECT_EQ(p["mount_errno"], EPERM);
  EXPECT_EQ(p["umount_errno"], EPERM);
  EXPECT_EQ(p["unshare_ns_errno"], EPERM);
  EXPECT_EQ(p["unshare_user_errno"], EPERM);
  EXPECT_EQ(p["unshare_net_errno"], EPERM);
  EXPECT_EQ(p["setuid_root_errno"], EPERM);
  EXPECT_EQ(p["mknod_errno"], EPERM);
  EXPECT_EQ(p["rlimit_raise_errno"], EPERM);
  // Its own cgroup namespace: the session group shows as a path below the container's root.
  EXPECT_EQ(p["proc_self_cgroup"].get<std::string>().find(top_cgroup()), std::string::npos)
      << p["proc_self_cgroup"];
}

TEST_F(SandboxRootTest, MemoryHogIsOomKilledAndInitSurvives) {
  Limits l = default_limits();
  l.memory_max = 64ull << 20;
  json created = create(l);
  ASSERT_TRUE(created.value("ok", false)) << created.dump();
  json p = run_probe("s-hog", {"hog", "1024"}, 30s);
  ASSERT_TRUE(p.is_object());
  EXPECT_EQ(p["hog_signal"], SIGKILL) << p.dump();
  EXPECT_EQ(p["hog_exited"], false);
  auto user_stats = cgroups_->stats(user_cgroup());
  ASSERT_TRUE(user_stats) << user_stats.error().str();
  EXPECT_GE(user_stats->oom_kills, 1u);
  auto session_stats = cgroups_->stats(user_cgroup() + "/s-hog");
  ASSERT_TRUE(session_stats) << session_stats.error().str();
  EXPECT_GE(session_stats->oom_kills, 1u) << "the session that was hit can be told apart";
  EXPECT_LE(user_stats->memory_current, 64ull << 20);
  EXPECT_TRUE(init_alive());
  // The container still works after the OOM kill.
  json again = run_probe("s-after", {"check", "--host-pid", "1", "--port", "1"});
  EXPECT_EQ(again["pid1_comm"], "appvirt-init");
}

// Host-side fork+exec of /bin/true, in milliseconds (-1 on failure).
long spawn_true_ms() {
  auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  char arg0[] = "/bin/true";
  char* argv[] = {arg0, nullptr};
  if (::posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) != 0) return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

TEST_F(SandboxRootTest, ForkBombStopsAtThePidsLimit) {
  Limits l = default_limits();
  l.pids_max = 48;
  json created = create(l);
  ASSERT_TRUE(created.value("ok", false)) << created.dump();
  std::string log = runtime_dir_ + ".bomb.log";
  json reply =
      exec(exec_request("s-bomb", {user_->home() + "/isolation_probe", "forkbomb", "60"}, log));
  ASSERT_EQ(reply.value("ok", false), true) << reply.dump();
  // The bomb fills the group up to the limit and no further. The helper sits in the session's
  // group until it exits and the intermediate child until reaped, so the bomb may have hit the
  // limit while those still counted: at least limit - 2 stay.
  bool full = wait_until(
      [&] {
        auto s = cgroups_->stats(user_cgroup());
        return s && s->pids_current >= 46;
      },
      15s);
  EXPECT_TRUE(full) << "pids.current " << cgroups_->stats(user_cgroup())->pids_current << " log "
                    << read_text(log) << " init log " << read_text(runtime_dir_ + ".init.log");
  EXPECT_TRUE(wait_until(
      [&] { return read_text(log).find("fork_failed_errno") != std::string::npos; }, 10s));
  json result = json::parse(read_text(log), nullptr, false);
  ASSERT_TRUE(result.is_object()) << read_text(log);
  EXPECT_EQ(result["fork_failed_errno"], EAGAIN);
  EXPECT_LE(cgroups_->stats(user_cgroup())->pids_current, 48u);
  // The host is unaffected: spawning a process is as quick as ever.
  long ms = spawn_true_ms();
  EXPECT_GE(ms, 0);
  EXPECT_LT(ms, 1000);
  EXPECT_TRUE(init_alive());
  // Ending the session ends the bomb and only the bomb.
  auto k = cgroups_->kill_all(user_cgroup() + "/s-bomb");
  ASSERT_TRUE(k) << k.error().str();
  EXPECT_TRUE(wait_until([&] { return cgroups_->stats(user_cgroup())->pids_current == 1; }, 5s));
  EXPECT_TRUE(init_alive());
}

TEST_F(SandboxRootTest, XvfbRunsInsideAndItsSocketIsOnTheHost) {
  json created = create(default_limits());
  ASSERT_TRUE(created.value("ok", false)) << created.dump();
  int display = 300 + static_cast<int>(::getpid() % 300);
  std::string log = runtime_dir_ + ".xvfb.log";
  json reply = exec(exec_request("s-x",
                                 {"/usr/bin/Xvfb", ":" + std::to_string(display), "-nolisten",
                                  "tcp", "-screen", "0", "640x480x24"},
                                 log));
  ASSERT_EQ(reply.value("ok", false), true) << reply.dump();
  pid_t xvfb = reply["pid"];
  std::string sock = runtime_dir_ + "/x11/X" + std::to_string(display);
  bool up = wait_until([&] { return fs::exists(sock); }, 15s);
  EXPECT_TRUE(up) << read_text(log);
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strncpy(un.sun_path, sock.c_str(), sizeof un.sun_path - 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&un), sizeof un), 0) << std::strerror(errno);
  ::close(fd);
  EXPECT_TRUE(process_alive(xvfb)) << read_text(log);
}

TEST_F(SandboxRootTest, ExecErrorsAreReported) {
  json created = create(default_limits());
  ASSERT_TRUE(created.value("ok", false)) << created.dump();
  json missing = exec(exec_request("s-e", {"/usr/bin/no-such-program"}, runtime_dir_ + ".e.log"));
  EXPECT_EQ(missing["ok"], false);
  EXPECT_NE(missing.value("error", "").find("execve(/usr/bin/no-such-program)"), std::string::npos)
      << missing.dump();
  // Never into the host's namespaces, whatever pid hostd sends.
  json host = exec_request("s-e", {"/bin/true"}, runtime_dir_ + ".e.log");
  host["init_pid"] = ::getpid();
  host.erase("init_start_time");
  json refused = exec(host);
  EXPECT_EQ(refused["ok"], false);
  EXPECT_NE(refused.value("error", "").find("not a container init"), std::string::npos)
      << refused.dump();
  // A group outside the container's would escape the user's limits.
  json outside = exec_request("s-e", {"/bin/true"}, runtime_dir_ + ".e.log");
  outside["cgroup"] = top_cgroup() + "/elsewhere";
  json escaped = exec(outside);
  EXPECT_EQ(escaped["ok"], false);
  EXPECT_NE(escaped.value("error", "").find("not a session group"), std::string::npos)
      << escaped.dump();
  EXPECT_FALSE(cgroups_->exists(top_cgroup() + "/elsewhere"));
  // A second container for the same user is refused; the first one keeps running.
  RunResult second =
      run_command({APPVIRT_SANDBOX_BIN, "create"}, create_request(default_limits()).dump());
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.out.find("already running"), std::string::npos) << second.out;
  EXPECT_TRUE(init_alive());
  // A stale start time (pid reused) is refused too.
  json stale = exec_request("s-e", {"/bin/true"}, runtime_dir_ + ".e.log");
  stale["init_start_time"] = init_start_ + 1;
  EXPECT_EQ(exec(stale)["ok"], false);
}

TEST_F(SandboxRootTest, BadRequestsFailCleanly) {
  RunResult r = run_command({APPVIRT_SANDBOX_BIN, "create"}, "{not json");
  EXPECT_EQ(r.exit_code, 1);
  json reply = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(reply.is_object()) << r.out;
  EXPECT_EQ(reply["ok"], false);
  EXPECT_NE(reply["error"].get<std::string>().find("not valid JSON"), std::string::npos);
  json req = create_request(default_limits());
  req["uid"] = 0;
  r = run_command({APPVIRT_SANDBOX_BIN, "create"}, req.dump());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("uid = 0"), std::string::npos) << r.out;
  EXPECT_FALSE(cgroups_->exists(user_cgroup())) << "nothing created for a bad request";
  r = run_command({APPVIRT_SANDBOX_BIN, "--help"}, "");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("create"), std::string::npos);
}

TEST_F(SandboxRootTest, SigtermEndsTheContainer) {
  json created = create(default_limits());
  ASSERT_TRUE(created.value("ok", false)) << created.dump();
  json reply = exec(exec_request("s-1", {user_->home() + "/isolation_probe", "sleep", "60"},
                                 runtime_dir_ + ".s1.log"));
  ASSERT_EQ(reply.value("ok", false), true) << reply.dump();
  pid_t sleeper = reply["pid"];
  ASSERT_TRUE(process_alive(sleeper));
  ASSERT_EQ(::kill(init_pid_, SIGTERM), 0);
  int status = 0;
  EXPECT_TRUE(wait_until([&] { return ::waitpid(init_pid_, &status, WNOHANG) == init_pid_; }, 5s));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_TRUE(wait_until([&] { return !process_alive(sleeper); }, 5s));
  EXPECT_NE(read_text(runtime_dir_ + ".init.log").find("appvirt-init terminating"),
            std::string::npos);
  // The init is already reaped; the rest of destroy() by hand.
  init_pid_ = 0;
  auto k = cgroups_->kill_all(top_cgroup());
  EXPECT_TRUE(k) << k.error().str();
  EXPECT_TRUE(cgroups_->remove(top_cgroup()));
  fs::remove_all(runtime_dir_);
}

TEST_F(SandboxRootTest, DestroyLeavesNothing) {
  json created = create(default_limits());
  ASSERT_TRUE(created.value("ok", false)) << created.dump();
  for (const char* s : {"s-1", "s-2"}) {
    json reply = exec(exec_request(s, {user_->home() + "/isolation_probe", "sleep", "60"},
                                   runtime_dir_ + "." + s + ".log"));
    ASSERT_EQ(reply.value("ok", false), true) << reply.dump();
  }
  auto pids = cgroups_->procs(top_cgroup());
  ASSERT_TRUE(pids);
  EXPECT_EQ(pids->size(), 3u) << "init + two sessions";
  destroy();  // asserts: no process, no cgroup dir, no mount, runtime dir removable
}

}  // namespace
}  // namespace appvirt::sandbox
