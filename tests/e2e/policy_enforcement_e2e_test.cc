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
#include <sys/prctl.h>
#include <sys/stat.h>
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
#include "tests/tools/test_support.h"

namespace appvirt::broker::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using appvirt::testing::Child;
using appvirt::testing::run_capture;
using Clock = std::chrono::steady_clock;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 15s) {
  auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
  return true;
}

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
    std::string t = read_text("/sys/fs/cgroup/cpuacct/" + path + "/cpuacct.usage");
    if (t.empty()) return std::nullopt;
    return std::stoull(t);
  }
  std::istringstream in(read_text("/sys/fs/cgroup/" + path + "/cpu.stat"));
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "usage_usec") return value * 1000;
  }
  return std::nullopt;
}

std::optional<int64_t> read_int(const std::string& file) {
  std::string t = read_text(file);
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
    std::istringstream in(read_text((d / "pids.events").string()));
    std::string key;
    int64_t n = 0;
    while (in >> key >> n) {
      if (key == "max") total += n;
    }
  }
  return total;
}

struct Web {
  std::string cookie, csrf;
};

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
    ASSERT_EQ(::geteuid(), 0u) << "this e2e test needs root (users, PAM, hostd)";
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char tmpl[] = "/tmp/policy-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    sock_ = dir_ + "/run/hostd.sock";
    pam_ = std::make_unique<TempPamService>(APPVIRT_PAM_FILE);
    ASSERT_TRUE(pam_->ok());
    std::ofstream(dir_ + "/gateway.secret") << std::string(48, 'G') << "\n";
    std::ofstream(dir_ + "/host.secret") << std::string(48, 'H') << "\n";
    std::ofstream(dir_ + "/hostd.toml") << "state_dir = \"" << dir_ << "/hostd\"\n"
                                        << "runtime_dir = \"" << dir_ << "/run\"\n"
                                        << "log_level = \"debug\"\n"
                                        << "[paths]\n"
                                        << "sandbox = \"" << APPVIRT_SANDBOX << "\"\n"
                                        << "rdp = \"" << APPVIRT_RDP << "\"\n";
  }

  void TearDown() override {
    if (broker_.running()) broker_.terminate(10s);
    std::set<std::string> ids;
    if (hostd_.running()) {
      auto list = http::unix_request(sock_, http::bhttp::verb::get, "/v1/sessions", "", 10s);
      if (list && list->status == 200) {
        nlohmann::json parsed = nlohmann::json::parse(list->body, nullptr, false);
        if (parsed.is_object()) {
          for (const auto& s : parsed["sessions"]) ids.insert(s["session_id"]);
        }
      }
      hostd_.terminate(10s);  // --terminate-sessions-on-exit: ends every session
    }
    for (auto& u : users_) {
      if (!u->ok()) continue;
      for (pid_t p : pids_of_uid(u->uid())) ::kill(p, SIGKILL);
    }
    eventually([&] {
      reap_orphans();
      for (auto& u : users_) {
        if (u->ok() && !pids_of_uid(u->uid()).empty()) return false;
      }
      return true;
    }, 5s);
    for (auto& u : users_) remove_cgroup("appvirt/u-" + u->name());
    for (const auto& id : ids) remove_cgroup("appvirt/rdp/s-" + id);
    users_.clear();
    pam_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  const TempUser& add_user(const std::string& prefix) {
    users_.push_back(std::make_unique<TempUser>(prefix, std::vector<std::string>{}));
    const TempUser& u = *users_.back();
    EXPECT_TRUE(u.ok());
    // Only /usr, some of /etc and the home are visible in the container.
    std::string app = u.home() + "/appvirt-testpattern";
    fs::copy_file(APPVIRT_TESTPATTERN, app, fs::copy_options::overwrite_existing);
    struct stat st {};
    ::stat(u.home().c_str(), &st);
    ::chown(app.c_str(), st.st_uid, st.st_gid);
    ::chmod(app.c_str(), 0755);
    return u;
  }

  void start_hostd() {
    appvirt::testing::SpawnOptions o;
    o.stderr_file = dir_ + "/hostd.log";
    auto c = Child::spawn({APPVIRT_HOSTD, "--config", dir_ + "/hostd.toml",
                           "--terminate-sessions-on-exit"}, o);
    ASSERT_TRUE(c) << c.error().str();
    hostd_ = std::move(*c);
    ASSERT_TRUE(eventually([&] {
      auto r = http::unix_request(sock_, http::bhttp::verb::get, "/v1/health", "", 2s);
      return r && r->status == 200;
    })) << read_text(o.stderr_file);
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
        << "log_level = \"debug\"\n"
        << "[listen]\naddress = \"127.0.0.1\"\nport = 0\n"
        << "[internal]\ngateway_secret_file = \"" << dir_ << "/gateway.secret\"\n"
        << "host_secret_file = \"" << dir_ << "/host.secret\"\nhost_poll_interval_ms = 1000\n"
        << "[[hosts]]\nname = \"local\"\nsocket = \"" << sock_ << "\"\ncapacity = 20\n"
        << kCatalog;
    appvirt::testing::SpawnOptions o;
    o.stderr_file = dir_ + "/broker.log";
    std::string port_file = dir_ + "/broker.port";
    auto c = Child::spawn({APPVIRT_BROKER, "--config", dir_ + "/broker.toml", "--port-file", port_file}, o);
    ASSERT_TRUE(c) << c.error().str();
    broker_ = std::move(*c);
    ASSERT_TRUE(eventually([&] { return fs::exists(port_file); })) << read_text(o.stderr_file);
    port_ = static_cast<uint16_t>(std::stoi(read_text(port_file)));
    ASSERT_TRUE(eventually([&] {
      auto r = https(port_, "GET", "/healthz");
      return r && r->status == 200 && nlohmann::json::parse(r->body)["hosts_up"] == 1;
    })) << read_text(o.stderr_file);
  }

  Web login(const TempUser& u) {
    auto r = https(port_, "POST", "/api/v1/login",
                   nlohmann::json{{"username", u.name()}, {"password", u.password()}}.dump());
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : r.error().str());
    Web w;
    if (!r) return w;
    std::string set = r->header("set-cookie");
    std::string prefix = "__Host-appvirt_session=";
    if (set.rfind(prefix, 0) == 0) w.cookie = set.substr(prefix.size(), set.find(';') - prefix.size());
    w.csrf = nlohmann::json::parse(r->body, nullptr, false).value("csrf_token", "");
    return w;
  }

  Options as(const Web& w) {
    Options o;
    o.headers["Cookie"] = "__Host-appvirt_session=" + w.cookie;
    o.headers["X-CSRF-Token"] = w.csrf;
    return o;
  }

  Reply launch(const Web& w, const std::string& app) {
    auto r = https(port_, "POST", "/api/v1/apps/" + app + "/launch", "", as(w));
    EXPECT_TRUE(r) << r.error().str();
    return r ? *r : Reply{};
  }

  // Launches and returns the session id (fails the test unless 200).
  std::string launch_ok(const Web& w, const std::string& app) {
    Reply r = launch(w, app);
    EXPECT_EQ(r.status, 200u) << r.body << read_text(dir_ + "/broker.log").substr(0, 4000);
    return r.header("x-appvirt-session-id");
  }

  // The gateway's view of a launch: endpoint and secret, redeemed with the launch token.
  nlohmann::json redeem(const Reply& rdp) {
    std::string key = "loadbalanceinfo:s:Cookie: msts=";
    auto pos = rdp.body.find(key);
    if (pos == std::string::npos) return {};
    std::string token = rdp.body.substr(pos + key.size(), rdp.body.find("\r\n", pos) - pos - key.size());
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
    EXPECT_TRUE(r && r->status == 201) << (r ? r->body : r.error().str()) << read_text(dir_ + "/hostd.log");
    if (!r || r->status != 201) return nlohmann::json::object();
    return nlohmann::json::parse(r->body, nullptr, false);
  }

  std::string dir_, sock_, last_probe_;
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
  EXPECT_NE(read_text(dir_ + "/hostd.log").find("reason=disconnect-timeout"), std::string::npos);
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
  Reply r = launch(web, "pattern");
  ASSERT_EQ(r.status, 200u) << r.body;
  std::string id = r.header("x-appvirt-session-id");
  EXPECT_EQ(hostd_session(id)["disconnect_timeout_s"], 60);
  EXPECT_EQ(hostd_session(id)["idle_timeout_s"], 0);
  nlohmann::json endpoint = redeem(r);
  ASSERT_TRUE(endpoint.contains("secret"));
  EXPECT_EQ(probe(endpoint,
                  {"--expect-pattern", "0", "--wait-match"}), 0) << last_probe_;
  auto left = Clock::now();
  ASSERT_TRUE(eventually([&] { return hostd_state(id) == "ended"; }, 90s));
  EXPECT_GE(seconds_since(left), 55.0);
  EXPECT_EQ(hostd_session(id)["end_reason"], "disconnect-timeout");
  EXPECT_TRUE(eventually([&] { return directory_entry(web, id).value("state", "") == "ended"; }))
      << directory_entry(web, id).dump();
  EXPECT_EQ(directory_entry(web, id)["end_reason"], "disconnect-timeout");
}

}  // namespace
}  // namespace appvirt::broker::e2e
