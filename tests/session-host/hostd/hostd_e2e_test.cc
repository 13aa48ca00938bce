// End to end (label e2e, needs root): the real appvirt-hostd with the real appvirt-sandbox,
// appvirt-rdp and Xvfb, throwaway users, appvirt-testpattern as the app and rdp-probe as the
// client. Checks what a user sees (the pattern over RDP), what logoff leaves (nothing), that a
// hostd restart keeps sessions, and that an OOM kill ends only the session that caused it.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "common/http_client.h"
#include "session-host/hostd/process.h"
#include "tests/session-host/hostd/hostd_process.h"
#include "tests/tools/test_support.h"
#include "tests/tools/test_users.h"

namespace appvirt::hostd {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using appvirt::testing::cgroup_dirs;
using appvirt::testing::Child;
using appvirt::testing::eventually;
using appvirt::testing::pids_mentioning;
using appvirt::testing::pids_of_uid;
using appvirt::testing::read_text_file;
using appvirt::testing::reap_orphans;
using appvirt::testing::run_capture;
using appvirt::testing::TempUser;

bool mounted_below(const std::string& dir) {
  return read_text_file("/proc/self/mountinfo").find(" " + dir) != std::string::npos;
}

class HostdE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = appvirt::testing::make_session_test_dir("hostd-e2e");
    ASSERT_TRUE(dir) << dir.error().str();
    dir_ = *dir;
    sock_ = appvirt::testing::hostd_socket(dir_);
    setup_ = {.binary = APPVIRT_HOSTD, .sandbox = APPVIRT_SANDBOX, .rdp = APPVIRT_RDP, .dir = dir_,
              .state = "state", .log_level = "debug"};
    auto written = appvirt::testing::write_hostd_config(setup_);
    ASSERT_TRUE(written) << written.error().str();
  }

  void TearDown() override {
    // Whatever a failed test left: sessions via the API, then hostd, then by hand.
    if (hostd_.running()) {
      for (const auto& id : session_ids_) ctl({"terminate", id});
    }
    std::vector<const TempUser*> users;
    for (const auto& u : users_) users.push_back(u.get());
    appvirt::testing::stop_hostd_and_clean_up(
        hostd_, dir_, users, std::set<std::string>(session_ids_.begin(), session_ids_.end()));
    users_.clear();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  const TempUser& add_user() {
    users_.push_back(std::make_unique<TempUser>("avt", std::vector<std::string>{}));
    const TempUser& u = *users_.back();
    auto installed = appvirt::testing::install_testpattern(u, APPVIRT_TESTPATTERN);
    EXPECT_TRUE(installed) << installed.error().str();
    return u;
  }

  void start_hostd(const std::vector<std::string>& flags = {}) {
    auto c = appvirt::testing::start_hostd(setup_, flags,
                                           dir_ + "/hostd.log." + std::to_string(++hostd_runs_));
    ASSERT_TRUE(c) << c.error().str();
    hostd_ = std::move(*c);
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

  nlohmann::json launch(const TempUser& u, std::vector<std::string> argv,
                        std::vector<std::string> opts = {}) {
    std::vector<std::string> args = {"launch", "--user", u.name(), "--app", "e2e"};
    args.insert(args.end(), opts.begin(), opts.end());
    args.push_back("--");
    args.insert(args.end(), argv.begin(), argv.end());
    int code = -1;
    auto j = ctl(args, &code);
    EXPECT_EQ(code, 0) << j.dump();
    if (j.contains("session_id")) session_ids_.push_back(j["session_id"]);
    return j;
  }

  nlohmann::json launch_pattern(const TempUser& u) {
    return launch(u, {u.home() + "/appvirt-testpattern", "--variant", "0"});
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

  void expect_nothing_left(const TempUser& u, const std::string& id) {
    std::string run = dir_ + "/run";
    EXPECT_TRUE(eventually([&] {
      reap_orphans({hostd_.pid()});
      return pids_of_uid(u.uid()).empty();
    }, 10s)) << "processes of " << u.name() << " left";
    EXPECT_TRUE(pids_mentioning(run + "/s/" + id).empty()) << "appvirt-rdp left";
    EXPECT_TRUE(cgroup_dirs("appvirt/u-" + u.name()).empty());
    EXPECT_TRUE(cgroup_dirs("appvirt/rdp/s-" + id).empty());
    EXPECT_FALSE(mounted_below(run));
    EXPECT_FALSE(fs::exists(run + "/s/" + id));
    EXPECT_FALSE(fs::exists(run + "/u/" + u.name()));
    EXPECT_FALSE(fs::exists(dir_ + "/state/sessions/" + id + ".secret"));
    EXPECT_FALSE(fs::exists(dir_ + "/state/containers/" + u.name() + ".json"));
  }

  std::string dir_, sock_;
  appvirt::testing::HostdSetup setup_;
  Child hostd_;
  int hostd_runs_ = 0;
  std::vector<std::unique_ptr<TempUser>> users_;
  std::vector<std::string> session_ids_;
};

TEST_F(HostdE2eTest, LaunchShowsThePatternAndLogoffLeavesNothing) {
  const TempUser& u = add_user();
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
  EXPECT_TRUE(eventually([&] { return ctl({"status", id})["clients"] == 0; }, 10s));
  auto held = Child::spawn({RDP_PROBE, s["endpoint"]["unix"].get<std::string>(), "--cookie",
                            "Cookie: msts=" + s["secret"].get<std::string>(), "--hold-ms", "8000",
                            "--timeout-ms", "20000", "--log-level", "off"});
  ASSERT_TRUE(held) << held.error().str();
  EXPECT_TRUE(eventually([&] { return ctl({"status", id})["clients"] == 1; }, 15s));
  held->terminate();
  EXPECT_TRUE(eventually([&] { return ctl({"status", id})["clients"] == 0; }, 15s));
  // Each process sits in its cgroup: app and Xvfb in the session's, the endpoint in its own.
  auto pids = ctl({"status", id})["pids"];
  std::string app_cg = read_text_file("/proc/" + std::to_string(pids["app"].get<int>()) + "/cgroup");
  std::string xvfb_cg = read_text_file("/proc/" + std::to_string(pids["xvfb"].get<int>()) + "/cgroup");
  std::string rdp_cg = read_text_file("/proc/" + std::to_string(pids["rdp"].get<int>()) + "/cgroup");
  EXPECT_NE(app_cg.find("appvirt/u-" + u.name() + "/s-" + id), std::string::npos) << app_cg;
  EXPECT_NE(xvfb_cg.find("appvirt/u-" + u.name() + "/s-" + id), std::string::npos) << xvfb_cg;
  EXPECT_NE(rdp_cg.find("appvirt/rdp/s-" + id), std::string::npos) << rdp_cg;
  // Live limit change of the user's container, seen in its cgroup (v1 pids hierarchy or v2).
  auto put = http::unix_request(sock_, http::bhttp::verb::put, "/v1/users/" + u.name() + "/limits",
                                R"({"pids_max":333})", 10s);
  ASSERT_TRUE(put) << put.error().str();
  EXPECT_EQ(put->status, 200u) << put->body;
  std::string pids_max = fs::exists("/sys/fs/cgroup/pids")
                             ? "/sys/fs/cgroup/pids/appvirt/u-" + u.name() + "/pids.max"
                             : "/sys/fs/cgroup/appvirt/u-" + u.name() + "/pids.max";
  EXPECT_EQ(read_text_file(pids_max), "333\n");
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
  const TempUser& u = add_user();
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
  EXPECT_TRUE(eventually([&] { return state_of(id) == "ended"; }, 10s));
  EXPECT_EQ(ctl({"status", id})["end_reason"], "app-exited");
  expect_nothing_left(u, id);
}

TEST_F(HostdE2eTest, TerminateSessionsOnExitLeavesNothing) {
  const TempUser& u = add_user();
  start_hostd({"--terminate-sessions-on-exit"});
  auto a = launch_pattern(u);
  auto b = launch_pattern(u);
  ASSERT_TRUE(a.contains("session_id") && b.contains("session_id"));
  stop_hostd();
  expect_nothing_left(u, a["session_id"]);
  expect_nothing_left(u, b["session_id"]);
  std::string record =
      read_text_file(dir_ + "/state/sessions/" + a["session_id"].get<std::string>() + ".json");
  EXPECT_NE(record.find("\"hostd-shutdown\""), std::string::npos) << record;
}

TEST_F(HostdE2eTest, OomKillEndsOnlyTheSessionThatCausedIt) {
  const TempUser& calm = add_user();
  const TempUser& hog = add_user();
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
