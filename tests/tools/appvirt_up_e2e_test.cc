// End to end (label e2e, needs root): the real `appvirt up` with the real hostd, broker and
// gateway on free loopback ports, a temporary state and runtime dir, a demo user it creates and a
// private copy of the PAM service. The demo credentials sign in through the broker API (HTTPS,
// self-signed certificate), the test pattern is launched, and rdp-probe, sent through the gateway
// with the token of the .rdp file, must see its exact pixels. Then SIGTERM: exit 0 and nothing
// left (processes, hostd socket, session cgroups, mounts); the test removes the user it made.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/broker/e2e_support.h"
#include "tests/tools/test_support.h"

namespace appvirt::up {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using appvirt::broker::e2e::https;
using appvirt::broker::e2e::Options;
using appvirt::broker::e2e::Reply;
using appvirt::broker::e2e::TempPamService;
using appvirt::testing::Child;
using appvirt::testing::run_capture;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
  return true;
}

// Processes that belong to this test's stack: run by the demo user, or with the test's
// directory on their command line (daemons, appvirt-rdp, sandbox helpers).
std::vector<std::string> stack_processes(const std::string& dir, uid_t user_uid) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stoi(pid) == ::getpid()) continue;
    std::string cmd = read_text(e.path() / "cmdline");
    for (auto& c : cmd) c = c ? c : ' ';
    struct stat st {};
    bool mine = ::stat(e.path().c_str(), &st) == 0 && user_uid != 0 && st.st_uid == user_uid;
    std::string state = read_text(e.path() / "stat");
    bool zombie = state.find(") Z ") != std::string::npos;
    if (!zombie && (mine || cmd.find(dir) != std::string::npos)) out.push_back(pid + " " + cmd);
  }
  return out;
}

// Cgroup directories named after the user (its container) or the session (its endpoint).
std::vector<std::string> session_cgroups(const std::string& user, const std::string& session) {
  std::vector<std::string> out;
  std::vector<fs::path> roots = {"/sys/fs/cgroup"};
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/fs/cgroup", ec)) roots.push_back(e.path());
  for (const auto& root : roots) {
    for (const auto& name : {"appvirt/u-" + user, "appvirt/rdp/s-" + session}) {
      if (!session.empty() || name.find("/u-") != std::string::npos) {
        if (fs::exists(root / name, ec)) out.push_back((root / name).string());
      }
    }
  }
  return out;
}

void remove_cgroup_tree(const fs::path& d) {
  std::error_code ec;
  std::vector<std::string> tree;
  for (const auto& e : fs::recursive_directory_iterator(d, ec)) {
    if (e.is_directory()) tree.push_back(e.path());
  }
  std::sort(tree.rbegin(), tree.rend());
  for (const auto& t : tree) ::rmdir(t.c_str());
  ::rmdir(d.c_str());
}

std::vector<std::string> mounts_under(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + dir) != std::string::npos) out.push_back(line);
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

std::string rdp_value(const std::string& rdp, const std::string& key) {
  auto pos = rdp.find(key);
  if (pos == std::string::npos) return {};
  pos += key.size();
  return rdp.substr(pos, rdp.find("\r\n", pos) - pos);
}

class AppvirtUpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "this e2e test needs root (useradd, PAM, hostd)";
    char tmpl[] = "/tmp/appvirt-up-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);  // appvirt-rdp (a service user) must reach <dir>/run/s/<sid>
    user_ = "avup" + appvirt::broker::e2e::random_suffix();
    ASSERT_EQ(::getpwnam(user_.c_str()), nullptr) << user_ << " exists already";
    password_ = "pw-" + appvirt::broker::e2e::random_suffix() + "-x'y";
    pam_ = std::make_unique<TempPamService>(APPVIRT_PAM_FILE);
    ASSERT_TRUE(pam_->ok());
    auto h = appvirt::testing::free_tcp_port();
    auto r = appvirt::testing::free_tcp_port();
    ASSERT_TRUE(h && r);
    http_port_ = static_cast<uint16_t>(*h);
    rdp_port_ = static_cast<uint16_t>(*r);
    ASSERT_NE(http_port_, rdp_port_);
  }

  void TearDown() override {
    if (up_.running()) up_.terminate(90s);
    uid_t uid = user_uid();
    for (const auto& p : stack_processes(dir_, uid)) ::kill(std::stoi(p), SIGKILL);
    for (const auto& c : session_cgroups(user_, session_)) remove_cgroup_tree(c);
    if (uid != 0) {
      run_capture({"/usr/sbin/userdel", "--remove", user_}, 30s);
      EXPECT_EQ(::getpwnam(user_.c_str()), nullptr) << "the demo user the test made is still there";
    }
    pam_.reset();
    for (const auto& m : mounts_under(dir_)) ADD_FAILURE() << "mount left: " << m;
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  static Reply must(Result<Reply> r) {
    EXPECT_TRUE(r) << (r ? "" : r.error().str());
    return r ? *r : Reply{};
  }

  uid_t user_uid() const {
    passwd* pw = ::getpwnam(user_.c_str());
    return pw ? pw->pw_uid : 0;
  }

  std::vector<std::string> up_argv() const {
    return {APPVIRT_UP, "up", "--state-dir", dir_ + "/state", "--runtime-dir", dir_ + "/run",
            "--http-port", std::to_string(http_port_), "--rdp-port", std::to_string(rdp_port_),
            "--bind", "127.0.0.1", "--demo-user", user_ + ":" + password_,
            "--pam-service", pam_->name(), "--log-level", "debug",
            "--hostd-bin", APPVIRT_HOSTD, "--broker-bin", APPVIRT_BROKER,
            "--gateway-bin", APPVIRT_GATEWAY, "--sandbox-bin", APPVIRT_SANDBOX,
            "--rdp-bin", APPVIRT_RDP, "--testpattern-bin", APPVIRT_TESTPATTERN};
  }

  std::string out() const { return read_text(dir_ + "/up.out"); }
  std::string err() const { return read_text(dir_ + "/up.err"); }
  std::string logs() const {
    std::string all;
    for (const char* n : {"hostd", "broker", "gateway"}) {
      all += std::string("--- ") + n + ".log\n" + read_text(dir_ + "/state/logs/" + n + ".log");
    }
    return all;
  }

  // Polls stdout for the banner; fails early if appvirt up exits.
  bool wait_banner(std::chrono::milliseconds timeout) {
    return eventually([&] {
      if (out().find("appvirt is up.") != std::string::npos) return true;
      auto code = up_.wait_exit(0ms);
      if (code) ADD_FAILURE() << "appvirt up exited early with " << *code;
      return code.has_value();
    }, timeout) && out().find("appvirt is up.") != std::string::npos;
  }

  std::string dir_, user_, password_, session_;
  uint16_t http_port_ = 0, rdp_port_ = 0;
  std::unique_ptr<TempPamService> pam_;
  Child up_;
};

TEST_F(AppvirtUpTest, DemoUserSignsInLaunchesThroughTheGatewayAndStopLeavesNothing) {
  appvirt::testing::SpawnOptions so;
  so.stdout_file = dir_ + "/up.out";
  so.stderr_file = dir_ + "/up.err";
  auto up = Child::spawn(up_argv(), so);
  ASSERT_TRUE(up) << up.error().str();
  up_ = std::move(*up);
  ASSERT_TRUE(wait_banner(120s)) << "no banner\n" << out() << err() << logs();

  std::string banner = out();
  std::string gateway = "127.0.0.1:" + std::to_string(rdp_port_);
  EXPECT_NE(banner.find("Created the Linux user '" + user_ + "'"), std::string::npos) << banner;
  EXPECT_NE(banner.find("Portal:   https://127.0.0.1:" + std::to_string(http_port_) + "/"),
            std::string::npos) << banner;
  EXPECT_NE(banner.find("Gateway:  " + gateway), std::string::npos) << banner;
  EXPECT_NE(banner.find("Demo credentials: user " + user_ + ", password " + password_ + "\n"),
            std::string::npos) << banner;
  EXPECT_NE(banner.find("xfreerdp /v:" + gateway + " /u:" + user_ + " /p:'" +
                        password_.substr(0, password_.size() - 2) + "'\\''y' /cert:ignore"),
            std::string::npos) << banner;
  ASSERT_NE(user_uid(), 0u);

  // Sign in with the demo credentials, list and launch the test pattern.
  Reply login = must(https(http_port_, "POST", "/api/v1/login",
                           nlohmann::json{{"username", user_}, {"password", password_}}.dump()));
  ASSERT_EQ(login.status, 200u) << login.body << logs();
  std::string set = login.header("set-cookie");
  std::string cookie = set.substr(0, set.find(';'));
  Options as;
  as.headers["Cookie"] = cookie;
  as.headers["X-CSRF-Token"] = nlohmann::json::parse(login.body).value("csrf_token", "");
  Reply apps = must(https(http_port_, "GET", "/api/v1/apps", "", as));
  ASSERT_EQ(apps.status, 200u) << apps.body;
  std::vector<std::string> ids;
  auto app_list = nlohmann::json::parse(apps.body, nullptr, false);
  for (const auto& a : app_list["apps"]) ids.push_back(a.value("id", ""));
  EXPECT_NE(std::find(ids.begin(), ids.end(), "testpattern"), ids.end()) << apps.body;
  EXPECT_NE(std::find(ids.begin(), ids.end(), "xterm"), ids.end()) << apps.body;

  as.headers["Accept"] = "application/json";
  Reply launch = must(https(http_port_, "POST", "/api/v1/apps/testpattern/launch", "", as));
  ASSERT_EQ(launch.status, 200u) << launch.body << logs();
  auto launched = nlohmann::json::parse(launch.body, nullptr, false);
  session_ = launched.value("session_id", "");
  std::string rdp = launched.value("rdp_file", "");
  EXPECT_EQ(rdp_value(rdp, "full address:s:"), gateway) << rdp;
  std::string cookie_line = rdp_value(rdp, "loadbalanceinfo:s:");
  ASSERT_EQ(cookie_line.rfind("Cookie: msts=", 0), 0u) << rdp;

  // Through the gateway, with the .rdp file's token: the exact test pattern.
  auto probe = run_capture({RDP_PROBE, gateway, "--cookie", cookie_line, "--lossless",
                            "--expect-pattern", "0", "--wait-match", "--timeout-ms", "30000",
                            "--log-level", "off"},
                           60s);
  ASSERT_TRUE(probe);
  EXPECT_EQ(probe->exit_code, 0) << probe->out << logs();
  auto report = nlohmann::json::parse(probe->out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << probe->out;
  EXPECT_EQ(report["match"], true) << probe->out;
  EXPECT_EQ(report["mismatched_pixels"], 0) << probe->out;

  std::vector<std::string> running = stack_processes(dir_, user_uid());
  for (const char* want : {"appvirt-hostd", "appvirt-broker", "appvirt-gateway", "appvirt-rdp",
                           "Xvfb", "appvirt-testpattern"}) {
    EXPECT_NE(join(running).find(want), std::string::npos) << want << " not running:\n" << join(running);
  }
  EXPECT_FALSE(session_cgroups(user_, session_).empty());

  // The password is in the banner only: never in a log.
  for (const auto& text : {err(), logs()}) {
    EXPECT_EQ(text.find(password_), std::string::npos) << "password logged";
  }

  ASSERT_EQ(::kill(up_.pid(), SIGTERM), 0);
  auto code = up_.wait_exit(120s);
  ASSERT_TRUE(code) << "appvirt up still running 120 s after SIGTERM\n" << err();
  EXPECT_EQ(*code, 0) << err() << logs();
  EXPECT_TRUE(eventually([&] { return stack_processes(dir_, user_uid()).empty(); }, 10s))
      << "left running:\n" << join(stack_processes(dir_, user_uid()));
  EXPECT_FALSE(fs::exists(dir_ + "/run/hostd.sock"));
  EXPECT_TRUE(session_cgroups(user_, session_).empty()) << join(session_cgroups(user_, session_));
  EXPECT_TRUE(mounts_under(dir_).empty()) << join(mounts_under(dir_));
  std::string stop_log = err();
  for (const char* step : {"daemon-stopping name=gateway", "daemon-stopping name=broker",
                           "daemon-stopping name=hostd"}) {
    EXPECT_NE(stop_log.find(step), std::string::npos) << step << "\n" << stop_log;
  }
  EXPECT_LT(stop_log.find("daemon-stopping name=gateway"), stop_log.find("daemon-stopping name=broker"));
  EXPECT_LT(stop_log.find("daemon-stopping name=broker"), stop_log.find("daemon-stopping name=hostd"));
}

TEST_F(AppvirtUpTest, HelpAndBadFlags) {
  auto help = run_capture({APPVIRT_UP, "up", "--help"}, 10s);
  ASSERT_TRUE(help);
  EXPECT_EQ(help->exit_code, 0);
  for (const char* flag : {"--state-dir", "--http-port", "--rdp-port", "--demo-user", "--bind",
                           "--no-demo-user", "--bin-dir"}) {
    EXPECT_NE(help->out.find(flag), std::string::npos) << flag << "\n" << help->out;
  }
  auto top = run_capture({APPVIRT_UP, "--help"}, 10s);
  ASSERT_TRUE(top);
  EXPECT_EQ(top->exit_code, 0);
  EXPECT_NE(top->out.find("up"), std::string::npos);

  // Bad flags end before anything is created.
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"up", "--no-such-flag"}, {"up", "--http-port", "70000"},
        {"up", "--demo-user", "nocolon"}, {"up", "--bind", "not-an-address"}, {}}) {
    std::vector<std::string> argv = {APPVIRT_UP};
    argv.insert(argv.end(), bad.begin(), bad.end());
    argv.push_back("--state-dir");
    argv.push_back(dir_ + "/never");
    if (bad.empty()) argv = {APPVIRT_UP};
    auto r = run_capture(argv, 10s);
    ASSERT_TRUE(r);
    EXPECT_NE(r->exit_code, 0) << join(argv);
    EXPECT_FALSE(fs::exists(dir_ + "/never")) << join(argv);
  }
}

}  // namespace
}  // namespace appvirt::up
