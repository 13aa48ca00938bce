// End to end (label e2e, needs root): the real appvirt-hostd with the real appvirt-sandbox,
// appvirt-rdp and Xvfb, throwaway users, appvirt-testpattern as the app and rdp-probe as the
// client. Checks what a user sees (the pattern over RDP), what logoff leaves (nothing), that a
// hostd restart keeps sessions, and that an OOM kill ends only the session that caused it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "common/http_client.h"
#include "session-host/hostd/process.h"
#include "tests/tools/test_support.h"

namespace appvirt::hostd {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using appvirt::testing::Child;
using appvirt::testing::run_capture;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Bounded polling for conditions on real processes and files.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// Pids whose real uid is uid (zombies included: they must be gone too).
std::vector<pid_t> pids_of_uid(uid_t uid) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat st {};
    if (::stat(e.path().c_str(), &st) == 0 && st.st_uid == uid) out.push_back(std::stoi(name));
  }
  return out;
}

// Pids whose command line mentions needle (the rdp endpoint of a session).
std::vector<pid_t> pids_mentioning(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = read_text(e.path().string() + "/cmdline");
    if (cmd.find(needle) != std::string::npos) out.push_back(std::stoi(name));
  }
  return out;
}

// cgroup directories of path in whatever hierarchies exist (v1 controllers or v2).
std::vector<std::string> cgroup_dirs(const std::string& path) {
  std::vector<std::string> out;
  if (fs::exists("/sys/fs/cgroup/" + path)) out.push_back("/sys/fs/cgroup/" + path);
  for (const auto& e : fs::directory_iterator("/sys/fs/cgroup")) {
    if (fs::exists(e.path() / path)) out.push_back((e.path() / path).string());
  }
  return out;
}

bool mounted_below(const std::string& dir) {
  return read_text("/proc/self/mountinfo").find(" " + dir) != std::string::npos;
}

// As a subreaper this test inherits what a stopped hostd leaves running; reap those zombies
// (not the children a Child object waits for).
void reap_orphans(const std::set<pid_t>& keep) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    if (keep.count(pid)) continue;
    std::string stat = read_text(e.path().string() + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (state == "Z" && ppid == ::getpid()) ::waitpid(pid, nullptr, WNOHANG);
  }
}

struct TestUser {
  std::string name;
  uid_t uid = 0;
  std::string home;
};

class HostdE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "this e2e test needs root (users, namespaces, cgroups)";
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char tmpl[] = "/tmp/hostd-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    sock_ = dir_ + "/run/hostd.sock";
    std::ofstream(dir_ + "/hostd.toml") << "state_dir = \"" << dir_ << "/state\"\n"
                                        << "runtime_dir = \"" << dir_ << "/run\"\n"
                                        << "log_level = \"debug\"\n"
                                        << "[paths]\n"
                                        << "sandbox = \"" << APPVIRT_SANDBOX << "\"\n"
                                        << "rdp = \"" << APPVIRT_RDP << "\"\n";
  }

  void TearDown() override {
    // Whatever a failed test left: sessions via the API, then hostd, then by hand.
    if (hostd_.running()) {
      for (const auto& id : session_ids_) ctl({"terminate", id});
      hostd_.terminate();
    }
    for (const auto& u : users_) {
      for (pid_t p : pids_of_uid(u.uid)) ::kill(p, SIGKILL);
    }
    for (const auto& id : session_ids_) {
      for (pid_t p : pids_mentioning(dir_ + "/run/s/" + id)) ::kill(p, SIGKILL);
    }
    eventually([&] {
      reap_orphans({});
      for (const auto& u : users_) {
        if (!pids_of_uid(u.uid).empty()) return false;
      }
      return true;
    }, 5s);
    for (const auto& u : users_) {
      for (const auto& d : cgroup_dirs("appvirt/u-" + u.name)) {
        std::vector<std::string> tree;
        for (const auto& e : fs::recursive_directory_iterator(d)) {
          if (e.is_directory()) tree.push_back(e.path());
        }
        std::sort(tree.rbegin(), tree.rend());
        for (const auto& t : tree) ::rmdir(t.c_str());
        ::rmdir(d.c_str());
      }
      std::system(("userdel -r " + u.name + " >/dev/null 2>&1").c_str());
    }
    for (const auto& id : session_ids_) {
      for (const auto& d : cgroup_dirs("appvirt/rdp/s-" + id)) ::rmdir(d.c_str());
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  TestUser add_user() {
    std::random_device rd;
    TestUser u;
    u.name = "avt" + std::to_string(rd() % 1000000);
    int rc = std::system(("useradd -m -s /bin/sh " + u.name).c_str());
    EXPECT_EQ(rc, 0);
    struct stat st {};
    u.home = "/home/" + u.name;
    ::stat(u.home.c_str(), &st);
    u.uid = st.st_uid;
    users_.push_back(u);
    // The app must be visible inside the container: only /usr, some /etc and the home are.
    std::string app = u.home + "/appvirt-testpattern";
    fs::copy_file(APPVIRT_TESTPATTERN, app, fs::copy_options::overwrite_existing);
    ::chown(app.c_str(), st.st_uid, st.st_gid);
    ::chmod(app.c_str(), 0755);
    return u;
  }

  void start_hostd(std::vector<std::string> flags = {}) {
    appvirt::testing::SpawnOptions o;
    o.stderr_file = dir_ + "/hostd.log." + std::to_string(++hostd_runs_);
    std::vector<std::string> argv = {APPVIRT_HOSTD, "--config", dir_ + "/hostd.toml"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto c = Child::spawn(argv, o);
    ASSERT_TRUE(c) << c.error().str();
    hostd_ = std::move(*c);
    ASSERT_TRUE(eventually([&] { return ctl({"health"}).value("ok", false); }))
        << read_text(o.stderr_file);
  }

  // Stops hostd the way systemd does and checks it went away cleanly.
  void stop_hostd() {
    ::kill(hostd_.pid(), SIGTERM);
    auto code = hostd_.wait_exit(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 0);
    EXPECT_FALSE(fs::exists(sock_));
  }

  nlohmann::json ctl(std::vector<std::string> args, int* exit_code = nullptr) {
    args.insert(args.begin(), {APPVIRT_HOSTCTL, "--socket", sock_});
    auto r = run_capture(args, 60s);
    if (!r) return {};
    if (exit_code) *exit_code = r->exit_code;
    auto j = nlohmann::json::parse(r->out, nullptr, false);
    return j.is_discarded() ? nlohmann::json::object() : j;
  }

  nlohmann::json launch(const TestUser& u, std::vector<std::string> argv,
                        std::vector<std::string> opts = {}) {
    std::vector<std::string> args = {"launch", "--user", u.name, "--app", "e2e"};
    args.insert(args.end(), opts.begin(), opts.end());
    args.push_back("--");
    args.insert(args.end(), argv.begin(), argv.end());
    int code = -1;
    auto j = ctl(args, &code);
    EXPECT_EQ(code, 0) << j.dump();
    if (j.contains("session_id")) session_ids_.push_back(j["session_id"]);
    return j;
  }

  nlohmann::json launch_pattern(const TestUser& u) {
    return launch(u, {u.home + "/appvirt-testpattern", "--variant", "0"});
  }

  // rdp-probe through the session's Unix socket with its secret: the pattern must arrive.
  int probe(const nlohmann::json& launched) {
    auto r = run_capture({RDP_PROBE, launched["endpoint"]["unix"].get<std::string>(), "--cookie",
                          "Cookie: msts=" + launched["secret"].get<std::string>(), "--lossless",
                          "--expect-pattern", "0", "--wait-match", "--timeout-ms", "30000"},
                         45s);
    if (!r) return -1;
    if (r->exit_code != 0) ADD_FAILURE() << "rdp-probe: " << r->out;
    return r->exit_code;
  }

  std::string state_of(const std::string& id) {
    auto j = ctl({"status", id});
    return j.value("state", std::string("?"));
  }

  void expect_nothing_left(const TestUser& u, const std::string& id) {
    std::string run = dir_ + "/run";
    EXPECT_TRUE(eventually([&] {
      reap_orphans({hostd_.pid()});
      return pids_of_uid(u.uid).empty();
    })) << "processes of " << u.name << " left";
    EXPECT_TRUE(pids_mentioning(run + "/s/" + id).empty()) << "appvirt-rdp left";
    EXPECT_TRUE(cgroup_dirs("appvirt/u-" + u.name).empty());
    EXPECT_TRUE(cgroup_dirs("appvirt/rdp/s-" + id).empty());
    EXPECT_FALSE(mounted_below(run));
    EXPECT_FALSE(fs::exists(run + "/s/" + id));
    EXPECT_FALSE(fs::exists(run + "/u/" + u.name));
    EXPECT_FALSE(fs::exists(dir_ + "/state/sessions/" + id + ".secret"));
    EXPECT_FALSE(fs::exists(dir_ + "/state/containers/" + u.name + ".json"));
  }

  std::string dir_, sock_;
  Child hostd_;
  int hostd_runs_ = 0;
  std::vector<TestUser> users_;
  std::vector<std::string> session_ids_;
};

TEST_F(HostdE2eTest, LaunchShowsThePatternAndLogoffLeavesNothing) {
  TestUser u = add_user();
  start_hostd();
  auto s = launch_pattern(u);
  ASSERT_TRUE(s.contains("session_id")) << s.dump();
  std::string id = s["session_id"];
  EXPECT_EQ(s["secret"].get<std::string>().size(), 64u);
  EXPECT_EQ(state_of(id), "running");
  EXPECT_EQ(probe(s), 0);
  // The status shows the session cgroup's usage and, from the endpoint's activity report, how
  // many RDP clients are connected (the broker shows 0 as "disconnected").
  auto usage = ctl({"status", id})["usage"];
  ASSERT_TRUE(usage.is_object()) << usage.dump();
  EXPECT_GT(usage["memory_bytes"].get<uint64_t>(), 1u << 20);  // Xvfb and the app
  EXPECT_GE(usage["pids"].get<uint64_t>(), 2u);
  EXPECT_TRUE(eventually([&] { return ctl({"status", id})["clients"] == 0; }));
  auto held = Child::spawn({RDP_PROBE, s["endpoint"]["unix"].get<std::string>(), "--cookie",
                            "Cookie: msts=" + s["secret"].get<std::string>(), "--hold-ms", "8000",
                            "--timeout-ms", "20000", "--log-level", "off"});
  ASSERT_TRUE(held) << held.error().str();
  EXPECT_TRUE(eventually([&] { return ctl({"status", id})["clients"] == 1; }, 15s));
  held->terminate();
  EXPECT_TRUE(eventually([&] { return ctl({"status", id})["clients"] == 0; }, 15s));
  // Each process sits in its cgroup: app and Xvfb in the session's, the endpoint in its own.
  auto pids = ctl({"status", id})["pids"];
  std::string app_cg = read_text("/proc/" + std::to_string(pids["app"].get<int>()) + "/cgroup");
  std::string xvfb_cg = read_text("/proc/" + std::to_string(pids["xvfb"].get<int>()) + "/cgroup");
  std::string rdp_cg = read_text("/proc/" + std::to_string(pids["rdp"].get<int>()) + "/cgroup");
  EXPECT_NE(app_cg.find("appvirt/u-" + u.name + "/s-" + id), std::string::npos) << app_cg;
  EXPECT_NE(xvfb_cg.find("appvirt/u-" + u.name + "/s-" + id), std::string::npos) << xvfb_cg;
  EXPECT_NE(rdp_cg.find("appvirt/rdp/s-" + id), std::string::npos) << rdp_cg;
  // Live limit change of the user's container, seen in its cgroup (v1 pids hierarchy or v2).
  auto put = http::unix_request(sock_, http::bhttp::verb::put, "/v1/users/" + u.name + "/limits",
                                R"({"pids_max":333})", 10s);
  ASSERT_TRUE(put) << put.error().str();
  EXPECT_EQ(put->status, 200u) << put->body;
  std::string pids_max = fs::exists("/sys/fs/cgroup/pids")
                             ? "/sys/fs/cgroup/pids/appvirt/u-" + u.name + "/pids.max"
                             : "/sys/fs/cgroup/appvirt/u-" + u.name + "/pids.max";
  EXPECT_EQ(read_text(pids_max), "333\n");
  // A wrong secret gets nothing.
  auto bad = run_capture({RDP_PROBE, s["endpoint"]["unix"].get<std::string>(), "--cookie",
                          "Cookie: msts=" + std::string(64, '0'), "--timeout-ms", "5000"},
                         15s);
  ASSERT_TRUE(bad);
  EXPECT_NE(bad->exit_code, 0);

  int code = -1;
  auto off = ctl({"terminate", id}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(off["state"], "ended");
  EXPECT_EQ(off["end_reason"], "logoff");
  expect_nothing_left(u, id);
  auto listed = ctl({"list"});
  ASSERT_EQ(listed["sessions"].size(), 1u);  // ended sessions stay listed for a while
  EXPECT_EQ(listed["sessions"][0]["state"], "ended");
  EXPECT_EQ(ctl({"health"})["sessions"], 0);
  // Errors come back as JSON with a non-zero exit code.
  auto unknown = ctl({"launch", "--user", "no-such-user-e2e", "--app", "x", "--", "/bin/true"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(unknown.contains("error"));
}

TEST_F(HostdE2eTest, RestartKeepsARunningSessionReachable) {
  TestUser u = add_user();
  start_hostd();
  auto s = launch_pattern(u);
  ASSERT_TRUE(s.contains("session_id")) << s.dump();
  std::string id = s["session_id"];
  pid_t app = ctl({"status", id})["pids"]["app"];
  ASSERT_EQ(probe(s), 0);
  stop_hostd();
  EXPECT_TRUE(proc_start_time(app).has_value()) << "the app died with hostd";
  start_hostd();
  auto st = ctl({"status", id});
  EXPECT_EQ(st["state"], "running") << st.dump();
  EXPECT_EQ(st["pids"]["app"], app);
  EXPECT_EQ(probe(s), 0);
  // The re-adopted session is still watched: its app exiting ends it.
  ::kill(app, SIGTERM);
  EXPECT_TRUE(eventually([&] { return state_of(id) == "ended"; }));
  EXPECT_EQ(ctl({"status", id})["end_reason"], "app-exited");
  expect_nothing_left(u, id);
}

TEST_F(HostdE2eTest, TerminateSessionsOnExitLeavesNothing) {
  TestUser u = add_user();
  start_hostd({"--terminate-sessions-on-exit"});
  auto a = launch_pattern(u);
  auto b = launch_pattern(u);
  ASSERT_TRUE(a.contains("session_id") && b.contains("session_id"));
  stop_hostd();
  expect_nothing_left(u, a["session_id"]);
  expect_nothing_left(u, b["session_id"]);
  std::string record =
      read_text(dir_ + "/state/sessions/" + a["session_id"].get<std::string>() + ".json");
  EXPECT_NE(record.find("\"hostd-shutdown\""), std::string::npos) << record;
}

TEST_F(HostdE2eTest, OomKillEndsOnlyTheSessionThatCausedIt) {
  TestUser calm = add_user();
  TestUser hog = add_user();
  start_hostd();
  auto good = launch_pattern(calm);
  ASSERT_TRUE(good.contains("session_id")) << good.dump();
  // tail of an endless line buffers without bound: a robust memory hog from /usr. It starts
  // eating after the launch has completed, so the OOM kill hits a running session.
  auto bad = launch(hog, {"/bin/sh", "-c", "sleep 2; exec /usr/bin/tail /dev/zero"},
                    {"--memory-max", "64M"});
  ASSERT_TRUE(bad.contains("session_id")) << bad.dump();
  std::string bad_id = bad["session_id"];
  ASSERT_TRUE(eventually([&] { return state_of(bad_id) == "ended"; }, 30s));
  EXPECT_EQ(ctl({"status", bad_id})["end_reason"], "oom-killed");
  expect_nothing_left(hog, bad_id);
  EXPECT_EQ(state_of(good["session_id"]), "running");
  EXPECT_EQ(probe(good), 0);
}

}  // namespace
}  // namespace appvirt::hostd
