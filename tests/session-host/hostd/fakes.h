#pragma once
// Fakes of hostd's seams for unit tests. They start real (harmless) processes where the session
// manager needs pids it can watch: "containers" and "Xvfb" are `sleep`, the app is the command
// the test asks for, so exit monitoring, reaping and re-adoption run on real pidfds.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <filesystem>
#include <map>
#include <set>

#include "session-host/hostd/cgroup_control.h"
#include "session-host/hostd/clock.h"
#include "session-host/hostd/rdp_launcher.h"
#include "session-host/hostd/sandbox_runner.h"
#include "session-host/hostd/user_db.h"

namespace appvirt::hostd::testing {

inline pid_t spawn_sleep() {
  SpawnOptions o;
  o.argv = {"/bin/sleep", "1000"};
  auto pid = spawn_process(o);
  return pid ? *pid : -1;
}

class FakeUserDb : public UserDb {
 public:
  std::map<std::string, UserInfo> users;
  Result<UserInfo> lookup(const std::string& name) override {
    auto it = users.find(name);
    if (it == users.end()) return fail("no such user: " + name, ENOENT);
    return it->second;
  }
};

class FakeClock : public Clock {
 public:
  int64_t now = 1'700'000'000;
  int64_t now_unix() const override { return now; }
};

// Cgroups as a map path → pids. kill_all sends SIGKILL to the recorded pids of the subtree.
class FakeCgroups : public CgroupControl {
 public:
  std::set<std::string> existing;
  std::map<std::string, std::set<pid_t>> members;
  std::map<std::string, Limits> limits;
  std::map<std::string, uint64_t> oom;
  std::vector<std::string> killed;

  std::string version() const override { return "v2"; }
  Result<void> create(const std::string& path) override {
    existing.insert(path);
    return {};
  }
  Result<void> set_limits(const std::string& path, const Limits& l) override {
    limits[path] = l;
    return {};
  }
  Result<void> kill_all(const std::string& path) override {
    killed.push_back(path);
    for (auto& [p, pids] : members) {
      if (p == path || p.rfind(path + "/", 0) == 0) {
        for (pid_t pid : pids) ::kill(pid, SIGKILL);
        pids.clear();
      }
    }
    return {};
  }
  Result<void> remove(const std::string& path) override {
    for (auto it = existing.begin(); it != existing.end();) {
      if (*it == path || it->rfind(path + "/", 0) == 0) it = existing.erase(it);
      else ++it;
    }
    return {};
  }
  void remove_if_empty(const std::string& path) override {
    for (const auto& p : existing) {
      if (p.rfind(path + "/", 0) == 0) return;
    }
    existing.erase(path);
  }
  Result<uint64_t> oom_kills(const std::string& path) override { return oom[path]; }
  Result<std::vector<pid_t>> procs(const std::string& path) override {
    return std::vector<pid_t>(members[path].begin(), members[path].end());
  }
  Result<std::vector<UniqueFd>> open_procs_files(const std::string&) override {
    return std::vector<UniqueFd>{};
  }
  void add(const std::string& path, pid_t pid) {
    existing.insert(path);
    members[path].insert(pid);
  }
};

// create → a `sleep` as container init; exec of the Xvfb path → a `sleep` plus a listening
// socket at <runtime>/u/<user>/x11/X<n>; exec of anything else → that command, for real.
class FakeSandbox : public SandboxRunner {
 public:
  FakeSandbox(FakeCgroups& cg, std::string xvfb_path) : cg_(cg), xvfb_path_(std::move(xvfb_path)) {}

  std::vector<ContainerSpec> creates;
  std::vector<ExecSpec> execs;
  bool fail_create = false;
  bool xvfb_makes_socket = true;
  std::string fail_exec_of;  // argv[0] whose exec fails
  std::map<std::string, std::string> runtime_of;  // user → runtime dir (from create)

  boost::asio::awaitable<Result<ProcRef>> create(ContainerSpec spec) override {
    creates.push_back(spec);
    if (fail_create) co_return fail("fake create failed");
    pid_t pid = spawn_sleep();
    cg_.add(spec.cgroup, pid);
    runtime_of[spec.user] = spec.runtime_dir;
    co_return *proc_ref(pid);
  }

  boost::asio::awaitable<Result<pid_t>> exec(ExecSpec spec) override {
    execs.push_back(spec);
    if (!spec.argv.empty() && spec.argv[0] == fail_exec_of) co_return fail("fake exec failed");
    if (!spec.argv.empty() && spec.argv[0] == xvfb_path_) co_return start_xvfb(spec);
    SpawnOptions o;
    o.argv = spec.argv;
    o.env = spec.env;
    auto pid = spawn_process(o);
    if (!pid) co_return tl::unexpected(pid.error());
    cg_.add(spec.cgroup, *pid);
    co_return *pid;
  }

  // The display's socket path for the user in the last create.
  std::string x_socket(const std::string& user, const std::string& display) const {
    return runtime_of.at(user) + "/x11/X" + display.substr(1);
  }

 private:
  Result<pid_t> start_xvfb(const ExecSpec& spec) {
    pid_t pid = spawn_sleep();
    cg_.add(spec.cgroup, pid);
    if (!xvfb_makes_socket) return pid;
    std::string user;
    for (const auto& e : spec.env) {
      if (e.rfind("USER=", 0) == 0) user = e.substr(5);
    }
    std::string path = x_socket(user, spec.argv[1]);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
      ::close(fd);
      return fail_errno("bind(" + path + ")");
    }
    ::close(fd);  // the file stays, which is what hostd waits for
    return pid;
  }

  FakeCgroups& cg_;
  std::string xvfb_path_;
};

class FakeRdp : public RdpLauncher {
 public:
  std::vector<RdpSpec> launches;
  bool fail_launch = false;
  int tcp_port = 0;
  std::vector<pid_t> pids;

  std::chrono::milliseconds delay{0};  // like a real endpoint, take a while to be ready

  boost::asio::awaitable<Result<RdpEndpoint>> launch(RdpSpec spec) override {
    launches.push_back(spec);
    if (delay.count() > 0) {
      boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, delay);
      co_await t.async_wait(boost::asio::use_awaitable);
    }
    if (fail_launch) co_return fail("fake rdp failed");
    pid_t pid = spawn_sleep();
    pids.push_back(pid);
    co_return RdpEndpoint{*proc_ref(pid), tcp_port};
  }
};

}  // namespace appvirt::hostd::testing
