// Policy enforcement end to end (label e2e, needs root): the real appvirt-broker with a policy
// file holding rules for throwaway PAM users, the real appvirt-hostd (appvirt-sandbox,
// appvirt-rdp, Xvfb) and real workloads in the users' containers:
//   - cpu weights 1:3 → the CPU split of two burners pinned to one core (cgroup v1 on the build
//     machines; the v2 driver is covered by the fake-tree tests in tests/session-host/sandbox);
//   - a memory hog over its limit is OOM-killed (reason oom-killed, in hostd and the broker's
//     directory) while another user's session keeps working; a fork bomb stops at pids_max;
//   - a launch past max_sessions is refused (403);
//   - idle and disconnect timeouts end sessions (hostd directly with seconds-long timeouts, the
//     broker with its shortest policy value, 1 minute, to show the reason in its directory).
// Every wait is bounded; everything created (users, PAM file, cgroups, processes, directories)
// is removed in TearDown, also after a failure.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "common/http_client.h"
#include "tests/broker/e2e_support.h"
#include "tests/session-host/hostd/hostd_process.h"
#include "tests/tools/test_support.h"

namespace appvirt::broker::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using appvirt::testing::Child;
using appvirt::testing::eventually;
using appvirt::testing::read_text_file;
using appvirt::testing::run_capture;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A file of cgroup `path` under controller (v1: /sys/fs/cgroup/<controller>/..., v2: unified).
std::string cgroup_file(const std::string& controller, const std::string& path,
                        const std::string& v1_file, const std::string& v2_file) {
  if (fs::exists("/sys/fs/cgroup/" + controller)) {
    return "/sys/fs/cgroup/" + controller + "/" + path + "/" + v1_file;
  }
  return "/sys/fs/cgroup/" + path + "/" + v2_file;
}

// CPU time of a cgroup subtree in nanoseconds (v1 cpuacct.usage, v2 cpu.stat usage_usec).
std::optional<uint64_t> cpu_usage_ns(const std::string& path) {
  if (fs::exists("/sys/fs/cgroup/cpuacct")) {
    std::string t = read_text_file("/sys/fs/cgroup/cpuacct/" + path + "/cpuacct.usage");
    if (t.empty()) return std::nullopt;
    return std::stoull(t);
  }
  std::istringstream in(read_text_file("/sys/fs/cgroup/" + path + "/cpu.stat"));
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "usage_usec") return value * 1000;
  }
  return std::nullopt;
}

std::optional<int64_t> read_int(const std::string& file) {
  std::string t = read_text_file(file);
  if (t.empty() || t.find_first_of("0123456789") != 0) return std::nullopt;
  return std::stoll(t);
}

// Sum of the "max" counters in pids.events of a cgroup and its descendants.
int64_t pids_max_events(const std::string& path) {
  fs::path top = fs::exists("/sys/fs/cgroup/pids") ? fs::path("/sys/fs/cgroup/pids") / path
                                                  : fs::path("/sys/fs/cgroup") / path;
  std::vector<fs::path> dirs = {top};
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(top, ec); !ec && it != fs::end(it); it.increment(ec)) {
    if (it->is_directory()) dirs.push_back(it->path());
  }
  int64_t total = 0;
  for (const auto& d : dirs) {
    std::istringstream in(read_text_file((d / "pids.events").string()));
    std::string key;
    int64_t n = 0;
    while (in >> key >> n) {
      if (key == "max") total += n;
    }
  }
  return total;
}

using Web = WebSession;

// The published apps (every user may start each; the policy narrows limits, not apps).
constexpr const char* kCatalog = R"(
[[apps]]
id = "pattern"
command = ['/bin/sh', '-c', 'exec "$HOME/appvirt-testpattern" --variant 0']
users = ["*"]
[[apps]]
id = "pattern2"
command = ['/bin/sh', '-c', 'exec "$HOME/appvirt-testpattern" --variant 0']
users = ["*"]
[[apps]]
id = "burn"
command = ['/bin/sh', '-c', 'exec /usr/bin/taskset -c 0 /bin/sh -c "while :; do :; done"']
users = ["*"]
[[apps]]
id = "hog"
command = ['/bin/sh', '-c', 'sleep 5; exec /usr/bin/tail /dev/zero']
users = ["*"]
[[apps]]
id = "bomb"
command = ['/bin/sh', '-c', '(sleep 3; while :; do /bin/sleep 600 & done) >/dev/null 2>&1 & exec "$HOME/appvirt-testpattern" --variant 0']
users = ["*"]
)";

class PolicyEnforcementE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::make_session_test_dir("policy-enforcement-e2e");
    ASSERT_TRUE(dir) << dir.error().str();
    dir_ = *dir;
    sock_ = testing::hostd_socket(dir_);
    pam_ = std::make_unique<TempPamService>(APPVIRT_PAM_FILE);
    ASSERT_TRUE(pam_->ok());
    std::ofstream(dir_ + "/gateway.secret") << std::string(48, 'G') << "\n";
    std::ofstream(dir_ + "/host.secret") << std::string(48, 'H') << "\n";
    hostd_setup_ = {.binary = APPVIRT_HOSTD, .sandbox = APPVIRT_SANDBOX, .rdp = APPVIRT_RDP,
                    .dir = dir_, .log_level = "debug"};
    auto written = testing::write_hostd_config(hostd_setup_);
    ASSERT_TRUE(written) << written.error().str();
  }

  void TearDown() override {
    if (broker_.running()) broker_.terminate(10s);
    std::vector<const TempUser*> users;
    for (const auto& u : users_) users.push_back(u.get());
    testing::stop_hostd_and_clean_up(hostd_, dir_, users);
    users_.clear();
    pam_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  const TempUser& add_user(const std::string& prefix) {
    users_.push_back(std::make_unique<TempUser>(prefix, std::vector<std::string>{}));
    const TempUser& u = *users_.back();
    auto installed = testing::install_testpattern(u, APPVIRT_TESTPATTERN);
    EXPECT_TRUE(installed) << installed.error().str();
    return u;
  }

  void start_hostd() {
    auto c = testing::start_hostd(hostd_setup_, {"--terminate-sessions-on-exit"},
                                  dir_ + "/hostd.log");
    ASSERT_TRUE(c) << c.error().str();
    hostd_ = std::move(*c);
  }

  // hostd and the broker with `policy` as the policy file.
  void start_stack(const std::string& policy) {
    start_hostd();
    std::ofstream(dir_ + "/policies.toml") << policy;
    std::ofstream(dir_ + "/broker.toml")
        << "state_dir = \"" << dir_ << "/broker\"\n"
        << "policy_file = \"" << dir_ << "/policies.toml\"\n"
        << "gateway_address = \"127.0.0.1:3389\"\n"
        << "pam_service = \"" << pam_->name() << "\"\n"
        << "admin_group = \"" << admin_group_ << "\"\n"
        << "log_level = \"debug\"\n"
        << "[listen]\naddress = \"127.0.0.1\"\nport = 0\n"
        << "[internal]\ngateway_secret_file = \"" << dir_ << "/gateway.secret\"\n"
        << "host_secret_file = \"" << dir_ << "/host.secret\"\nhost_poll_interval_ms = 1000\n"
        << "[[hosts]]\nname = \"local\"\nsocket = \"" << sock_ << "\"\ncapacity = 20\n"
        << kCatalog;
    auto b = start_broker(APPVIRT_BROKER, dir_ + "/broker.toml", dir_ + "/broker.port",
                          dir_ + "/broker.log");
    ASSERT_TRUE(b) << b.error().str();
    broker_ = std::move(b->child);
    port_ = b->port;
  }

  Web login(const TempUser& u) {
    auto web = e2e::login(port_, u.name(), u.password());
    EXPECT_TRUE(web) << web.error().str();
    return web ? *web : Web{};
  }

  Reply launch(const Web& w, const std::string& app) {
    auto r = https(port_, "POST", "/api/v1/apps/" + app + "/launch", "", as(w));
    EXPECT_TRUE(r) << r.error().str();
    return r ? *r : Reply{};
  }

  // Launches and returns the session id (fails the test unless 200).
  std::string launch_ok(const Web& w, const std::string& app) {
    Reply r = launch(w, app);
    EXPECT_EQ(r.status, 200u) << r.body << read_text_file(dir_ + "/broker.log").substr(0, 4000);
    return r.header("x-appvirt-session-id");
  }

  // The gateway's view of a launch: endpoint and secret, redeemed with the launch token.
  nlohmann::json redeem(const Reply& rdp) {
    std::string token = token_of_rdp_file(rdp.body);
    if (token.empty()) return {};
    Options o;
    o.headers["Authorization"] = "Bearer " + std::string(48, 'G');
    auto r = https(port_, "POST", "/internal/v1/tokens/redeem", nlohmann::json{{"token", token}}.dump(), o);
    if (!r || r->status != 200) return {};
    return nlohmann::json::parse(r->body, nullptr, false);
  }

  nlohmann::json hostd_session(const std::string& id) {
    auto r = http::unix_request(sock_, http::bhttp::verb::get, "/v1/sessions/" + id, "", 5s);
    if (!r || r->status != 200) return nlohmann::json::object();
    return nlohmann::json::parse(r->body, nullptr, false);
  }
  std::string hostd_state(const std::string& id) { return hostd_session(id).value("state", "?"); }

  // The session as the broker's directory shows it to its user.
  nlohmann::json directory_entry(const Web& w, const std::string& id) {
    auto r = https(port_, "GET", "/api/v1/sessions?include_ended=true", "", as(w));
    if (!r || r->status != 200) return nlohmann::json::object();
    nlohmann::json parsed = nlohmann::json::parse(r->body, nullptr, false);
    if (!parsed.is_object() || !parsed.contains("sessions")) return nlohmann::json::object();
    for (const auto& s : parsed["sessions"]) {
      if (s.value("session_id", "") == id) return s;
    }
    return nlohmann::json::object();
  }

  // rdp-probe against an endpoint; extra args appended. Returns the exit code.
  int probe(const std::string& unix_socket, const std::string& secret,
            std::vector<std::string> extra, std::chrono::milliseconds bound = 60s) {
    std::vector<std::string> argv = {RDP_PROBE, unix_socket, "--cookie", "Cookie: msts=" + secret,
                                     "--lossless", "--timeout-ms", "30000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run_capture(argv, bound);
    if (!r) return -1;
    last_probe_ = r->out;
    return r->exit_code;
  }

  // rdp-probe against a session described by {"endpoint":{"unix"},"secret"} (a hostd launch
  // reply or a redeemed token).
  int probe(const nlohmann::json& session, std::vector<std::string> extra) {
    return probe(session["endpoint"]["unix"].get<std::string>(),
                 session["secret"].get<std::string>(), std::move(extra));
  }

  // hostctl-free launch straight at hostd (tests that need timeouts shorter than a policy allows).
  nlohmann::json hostd_launch(const TempUser& u, int idle_s, int disconnect_s) {
    nlohmann::json body = {{"user", u.name()},
                           {"app_id", "pattern"},
                           {"command", {u.home() + "/appvirt-testpattern", "--variant", "0"}},
                           {"idle_timeout_s", idle_s},
                           {"disconnect_timeout_s", disconnect_s}};
    auto r = http::unix_request(sock_, http::bhttp::verb::post, "/v1/sessions", body.dump(), 60s);
    EXPECT_TRUE(r && r->status == 201) << (r ? r->body : r.error().str()) << read_text_file(dir_ + "/hostd.log");
    if (!r || r->status != 201) return nlohmann::json::object();
    return nlohmann::json::parse(r->body, nullptr, false);
  }

  // Launches the pattern app and connects a client until it shows the pattern; the client then
  // leaves. Returns the session id ("" after a reported failure).
  std::string launch_and_leave(const Web& web) {
    Reply r = launch(web, "pattern");
    EXPECT_EQ(r.status, 200u) << r.body;
    nlohmann::json endpoint = redeem(r);
    if (!endpoint.contains("secret")) {
      ADD_FAILURE() << "no endpoint for the launch: " << r.body;
      return "";
    }
    EXPECT_EQ(probe(endpoint, {"--expect-pattern", "0", "--wait-match"}), 0) << last_probe_;
    return r.header("x-appvirt-session-id");
  }

  // The session ends with reason disconnect-timeout, the policy's one minute after its client
  // left, in hostd and then in the broker's directory.
  void expect_disconnect_timeout(const Web& web, const std::string& id, Clock::time_point left) {
    ASSERT_TRUE(eventually([&] { return hostd_state(id) == "ended"; }, 90s));
    EXPECT_GE(seconds_since(left), 55.0);
    EXPECT_EQ(hostd_session(id)["end_reason"], "disconnect-timeout");
    EXPECT_TRUE(eventually([&] { return directory_entry(web, id).value("state", "") == "ended"; }))
        << directory_entry(web, id).dump();
    EXPECT_EQ(directory_entry(web, id)["end_reason"], "disconnect-timeout");
  }

  std::string dir_, sock_, last_probe_;
  std::string admin_group_ = "appvirt-admins";  // the broker's default; a test may set its own
  testing::HostdSetup hostd_setup_;
  uint16_t port_ = 0;
  Child hostd_, broker_;
  std::unique_ptr<TempPamService> pam_;
  std::vector<std::unique_ptr<TempUser>> users_;
};

TEST_F(PolicyEnforcementE2eTest, CpuWeightsOneToThreeSplitOneCore) {
  const TempUser& light = add_user("avpl");
  const TempUser& heavy = add_user("avph");
  start_stack("[users." + light.name() + "]\ncpu_weight = 100\n[users." + heavy.name() +
              "]\ncpu_weight = 300\n");
  std::string a = launch_ok(login(light), "burn");
  std::string b = launch_ok(login(heavy), "burn");
  ASSERT_FALSE(a.empty() || b.empty());
  EXPECT_EQ(hostd_session(a)["limits"].value("cpu_weight", 0), 100);
  EXPECT_EQ(hostd_session(b)["limits"].value("cpu_weight", 0), 300);
  std::string cg_a = "appvirt/u-" + light.name(), cg_b = "appvirt/u-" + heavy.name();
  if (fs::exists("/sys/fs/cgroup/cpu")) {  // v1: weight*1024/100
    EXPECT_EQ(read_int(cgroup_file("cpu", cg_a, "cpu.shares", "")), 1024);
    EXPECT_EQ(read_int(cgroup_file("cpu", cg_b, "cpu.shares", "")), 3072);
  } else {
    EXPECT_EQ(read_int("/sys/fs/cgroup/" + cg_a + "/cpu.weight"), 100);
    EXPECT_EQ(read_int("/sys/fs/cgroup/" + cg_b + "/cpu.weight"), 300);
  }
  std::this_thread::sleep_for(1s);  // both burners running and pinned
  auto a0 = cpu_usage_ns(cg_a), b0 = cpu_usage_ns(cg_b);
  // Core 0 is shared with whatever else the machine runs; the split between the two sibling
  // cgroups is what the weights decide, however much of the core they get together.
  std::this_thread::sleep_for(8s);
  auto a1 = cpu_usage_ns(cg_a), b1 = cpu_usage_ns(cg_b);
  ASSERT_TRUE(a0 && b0 && a1 && b1);
  double da = static_cast<double>(*a1 - *a0), db = static_cast<double>(*b1 - *b0);
  ASSERT_GT(da + db, 5e8) << "the burners got less than 0.5 s of CPU in 8 s";
  double share = da / (da + db);
  std::cout << "[ measured ] cpu split weight 100 : 300 = " << share * 100 << " % : "
            << (1 - share) * 100 << " % (cpu seconds " << da / 1e9 << " / " << db / 1e9 << ")\n";
  RecordProperty("light_share_percent", std::to_string(share * 100));
  EXPECT_NEAR(share, 0.25, 0.25 * 0.15) << "expected 25 % ± 15 % of it";
}

TEST_F(PolicyEnforcementE2eTest, MemoryHogIsOomKilledAndOthersKeepWorking) {
  const TempUser& calm = add_user("avpc");
  const TempUser& hog = add_user("avpm");
  start_stack("[users." + hog.name() + "]\nmemory_max = \"64M\"\n");
  Web calm_web = login(calm), hog_web = login(hog);
  Reply good = launch(calm_web, "pattern");
  ASSERT_EQ(good.status, 200u) << good.body;
  nlohmann::json endpoint = redeem(good);
  ASSERT_TRUE(endpoint.contains("secret")) << endpoint.dump();
  std::string bad = launch_ok(hog_web, "hog");
  ASSERT_FALSE(bad.empty());
  EXPECT_EQ(hostd_session(bad)["limits"].value("memory_max", 0ull), 64ull << 20);
  ASSERT_TRUE(eventually([&] { return hostd_state(bad) == "ended"; }, 60s));
  EXPECT_EQ(hostd_session(bad)["end_reason"], "oom-killed");
  EXPECT_TRUE(eventually([&] { return directory_entry(hog_web, bad).value("state", "") == "ended"; }))
      << directory_entry(hog_web, bad).dump();
  EXPECT_EQ(directory_entry(hog_web, bad)["end_reason"], "oom-killed");
  // The other user's session is untouched and still shows its app.
  std::string good_id = good.header("x-appvirt-session-id");
  EXPECT_EQ(hostd_state(good_id), "running");
  EXPECT_EQ(probe(endpoint,
                  {"--expect-pattern", "0", "--wait-match"}), 0) << last_probe_;
}

TEST_F(PolicyEnforcementE2eTest, ForkBombStopsAtPidsMaxAndTheSessionKeepsWorking) {
  const TempUser& u = add_user("avpp");
  start_stack("[users." + u.name() + "]\npids_max = 48\n");
  Web web = login(u);
  Reply r = launch(web, "bomb");
  ASSERT_EQ(r.status, 200u) << r.body;
  std::string id = r.header("x-appvirt-session-id");
  nlohmann::json endpoint = redeem(r);
  ASSERT_TRUE(endpoint.contains("secret"));
  std::string cg = "appvirt/u-" + u.name();
  std::string current = cgroup_file("pids", cg, "pids.current", "pids.current");
  EXPECT_EQ(read_int(cgroup_file("pids", cg, "pids.max", "pids.max")), 48);
  // The bomb fills the container up to the limit and no further.
  EXPECT_TRUE(eventually([&] { return read_int(current).value_or(0) >= 40; }, 20s))
      << "pids.current " << read_int(current).value_or(-1);
  int64_t peak = 0;
  for (int i = 0; i < 20; ++i) {
    peak = std::max(peak, read_int(current).value_or(0));
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_LE(peak, 48);
  // Refused forks are counted in the pids.events of the forking task's cgroup (v1), i.e. the
  // session's child cgroup: sum the subtree.
  EXPECT_GT(pids_max_events(cg), 0) << "no fork was refused at the limit";
  // The session and the host keep working.
  EXPECT_EQ(hostd_state(id), "running");
  EXPECT_EQ(probe(endpoint,
                  {"--expect-pattern", "0", "--wait-match"}), 0) << last_probe_;
  auto health = http::unix_request(sock_, http::bhttp::verb::get, "/v1/health", "", 5s);
  ASSERT_TRUE(health && health->status == 200);
}

TEST_F(PolicyEnforcementE2eTest, LaunchPastMaxSessionsIsRefused) {
  const TempUser& u = add_user("avps");
  start_stack("[defaults]\nmax_sessions = 5\n[users." + u.name() + "]\nmax_sessions = 1\n");
  Web web = login(u);
  std::string first = launch_ok(web, "pattern");
  ASSERT_FALSE(first.empty());
  Reply second = launch(web, "pattern2");
  EXPECT_EQ(second.status, 403u) << second.body;
  EXPECT_NE(second.body.find("session limit reached (1)"), std::string::npos) << second.body;
  // Reattaching to the running session is no new session.
  Reply again = launch(web, "pattern");
  EXPECT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(again.header("x-appvirt-session-id"), first);
  auto sessions = http::unix_request(sock_, http::bhttp::verb::get, "/v1/sessions", "", 5s);
  ASSERT_TRUE(sessions);
  EXPECT_EQ(nlohmann::json::parse(sessions->body)["sessions"].size(), 1u) << sessions->body;
}

TEST_F(PolicyEnforcementE2eTest, DisconnectTimeoutEndsTheSessionOnlyAfterTheClientLeft) {
  const TempUser& u = add_user("avpd");
  start_hostd();
  nlohmann::json s = hostd_launch(u, 0, 5);
  ASSERT_TRUE(s.contains("session_id"));
  std::string id = s["session_id"];
  EXPECT_EQ(hostd_session(id)["disconnect_timeout_s"], 5);
  // Connected for longer than the timeout: the session must survive it.
  EXPECT_EQ(probe(s, {"--hold-ms", "7000"}), 0) << last_probe_;
  auto left = Clock::now();
  EXPECT_EQ(hostd_state(id), "running");
  ASSERT_TRUE(eventually([&] { return hostd_state(id) == "ended"; }, 20s));
  double after = seconds_since(left);
  EXPECT_EQ(hostd_session(id)["end_reason"], "disconnect-timeout");
  EXPECT_GE(after, 4.0) << "ended too soon after the disconnect";
  EXPECT_LE(after, 9.0) << "ended too late after the disconnect";
  std::cout << "[ measured ] disconnect-timeout 5 s: ended " << after << " s after the client left\n";
  EXPECT_NE(read_text_file(dir_ + "/hostd.log").find("reason=disconnect-timeout"), std::string::npos);
}

TEST_F(PolicyEnforcementE2eTest, IdleTimeoutSparesATypingClientAndEndsAnIdleOne) {
  const TempUser& u = add_user("avpi");
  start_hostd();
  nlohmann::json s = hostd_launch(u, 4, 0);
  ASSERT_TRUE(s.contains("session_id"));
  std::string id = s["session_id"];
  // 16 keys, one every 500 ms: 8 s of typing, twice the idle timeout.
  EXPECT_EQ(probe(s,
                  {"--type-text", "abcdefghijklmnop", "--type-interval-ms", "500"}), 0)
      << last_probe_;
  EXPECT_EQ(hostd_state(id), "running") << hostd_session(id).dump();
  // Disconnected, no disconnect timeout: idle does not count without a client.
  std::this_thread::sleep_for(5s);
  EXPECT_EQ(hostd_state(id), "running");
  // A client that sends nothing is ended under it.
  auto connected = Clock::now();
  int code = probe(s, {"--hold-ms", "20000"});
  double after = seconds_since(connected);
  EXPECT_NE(code, 0) << "the idle client was not disconnected: " << last_probe_;
  EXPECT_NE(last_probe_.find("connection closed during --hold-ms"), std::string::npos) << last_probe_;
  ASSERT_TRUE(eventually([&] { return hostd_state(id) == "ended"; }, 10s));
  EXPECT_EQ(hostd_session(id)["end_reason"], "idle-timeout");
  EXPECT_GE(after, 3.5);
  EXPECT_LE(after, 12.0);
  std::cout << "[ measured ] idle-timeout 4 s: idle client cut off " << after << " s after it started\n";
}

TEST_F(PolicyEnforcementE2eTest, BrokerDirectoryShowsTheDisconnectTimeout) {
  // The policy's shortest timeout is one minute, so this test takes about that long.
  const TempUser& u = add_user("avpb");
  start_stack("[users." + u.name() + "]\ndisconnect_timeout = \"1m\"\nidle_timeout = \"never\"\n");
  Web web = login(u);
  std::string id = launch_and_leave(web);
  auto left = Clock::now();
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(hostd_session(id)["disconnect_timeout_s"], 60);
  EXPECT_EQ(hostd_session(id)["idle_timeout_s"], 0);
  expect_disconnect_timeout(web, id, left);
}

TEST_F(PolicyEnforcementE2eTest, PolicyChangeGivesARunningSessionADisconnectTimeout) {
  // Launched without a disconnect timeout, left by its client, then an admin sets one: the
  // running session ends by it, the policy's shortest value (1 minute) after the client left.
  TempGroup admins("avpadm");
  ASSERT_TRUE(admins.ok());
  TempUser admin("avpd", {admins.name()});
  ASSERT_TRUE(admin.ok());
  admin_group_ = admins.name();
  const TempUser& u = add_user("avpt");
  start_stack("[users." + u.name() + "]\ndisconnect_timeout = \"never\"\nidle_timeout = \"never\"\n");
  Web web = login(u);
  std::string id = launch_and_leave(web);
  auto left = Clock::now();
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(hostd_session(id)["disconnect_timeout_s"], 0);
  ASSERT_TRUE(eventually([&] { return directory_entry(web, id).value("state", "") == "disconnected"; }))
      << directory_entry(web, id).dump();

  nlohmann::json policy = {{"users", {{u.name(), {{"disconnect_timeout", "1m"}, {"idle_timeout", "never"}}}}}};
  auto put = https(port_, "PUT", "/api/v1/admin/policies",
                   nlohmann::json{{"policy", policy}, {"comment", "disconnect timeout"}}.dump(),
                   as(login(admin)));
  ASSERT_TRUE(put) << put.error().str();
  ASSERT_EQ(put->status, 200u) << put->body;
  EXPECT_EQ(hostd_session(id)["disconnect_timeout_s"], 60) << "pushed before the PUT answers";
  EXPECT_EQ(hostd_session(id)["idle_timeout_s"], 0);
  EXPECT_EQ(hostd_state(id), "running");
  expect_disconnect_timeout(web, id, left);
}

}  // namespace
}  // namespace appvirt::broker::e2e
