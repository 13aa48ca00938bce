// The gateway in front of the REAL session endpoint: appvirt-rdp (started as root, as hostd
// does) serving an Xvfb display that shows appvirt-testpattern, a fake HTTPS broker that maps
// tokens (and one user's password) to that endpoint, and real clients: rdp-probe must see the
// exact pattern through the gateway; xfreerdp logging on with a password must be redirected and
// land in the session. Needs root (appvirt-rdp drops to the appvirt-rdp user, created here if
// missing and removed again). Label root.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/tls_cert.h"
#include "tests/gateway/fake_broker.h"
#include "tests/gateway/gateway_process.h"
#include "tests/tools/test_support.h"

namespace appvirt::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string random_hex(size_t bytes) {
  std::random_device rd;
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    static const char* kHex = "0123456789abcdef";
    unsigned v = rd() & 0xff;
    out += kHex[v >> 4];
    out += kHex[v & 15];
  }
  return out;
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds within) {
  auto end = Clock::now() + within;
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return cond();
}

size_t count_in(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

int run_quiet(const std::vector<std::string>& argv) {
  auto r = run_capture(argv, 30000ms);
  return r ? r->exit_code : -1;
}

// A display number with neither lock file nor socket on the host.
int free_display(int from) {
  for (int n = from; n < from + 200; ++n) {
    if (!fs::exists("/tmp/.X" + std::to_string(n) + "-lock") &&
        !fs::exists("/tmp/.X11-unix/X" + std::to_string(n))) {
      return n;
    }
  }
  return -1;
}

// Everything the tests share: the session display with the pattern and its appvirt-rdp.
struct Session {
  std::unique_ptr<TempDir> dir;
  std::string x11_dir, xauth, cert, key, secret_file, sock_dir, socket, secret;
  int display = -1;
  Child xvfb, pattern, rdp;
  std::string rdp_log;
  bool created_user = false;
};
Session* s = nullptr;

class GatewayRdpE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(::geteuid(), 0u) << "needs root: appvirt-rdp starts as root and drops privileges";
    s = new Session;
    s->dir = std::make_unique<TempDir>();
    ASSERT_EQ(::chmod(s->dir->path().c_str(), 0755), 0);
    ensure_user();
    const std::string& d = s->dir->path();
    s->x11_dir = d + "/x11";
    s->sock_dir = d + "/s";
    s->socket = s->sock_dir + "/rdp.sock";
    s->xauth = d + "/Xauthority";
    s->cert = d + "/rdp.crt";
    s->key = d + "/rdp.key";
    s->secret_file = d + "/secret";
    fs::create_directories(s->x11_dir);
    fs::permissions(s->x11_dir, fs::perms(01777));
    fs::create_directories(s->sock_dir);
    struct passwd* pw = ::getpwnam("appvirt-rdp");
    ASSERT_NE(pw, nullptr);
    ASSERT_EQ(::chown(s->sock_dir.c_str(), pw->pw_uid, pw->pw_gid), 0);
    ASSERT_EQ(::chmod(s->sock_dir.c_str(), 0700), 0);
    ASSERT_TRUE(ensure_self_signed_cert(s->cert, s->key, "localhost", 2));
    s->secret = random_hex(20);
    std::ofstream(s->secret_file) << s->secret << "\n";
    start_session_display();
    start_pattern();
    start_rdp();
  }

  static void TearDownTestSuite() {
    if (!s) return;
    s->rdp.terminate(10000ms);
    s->pattern.terminate();
    s->xvfb.terminate();
    if (s->created_user) run_quiet({"userdel", "appvirt-rdp"});
    delete s;
    s = nullptr;
  }

  static void ensure_user() {
    if (::getpwnam("appvirt-rdp")) return;
    ASSERT_EQ(run_quiet({"useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                         "--shell", "/usr/sbin/nologin", "appvirt-rdp"}),
              0);
    s->created_user = true;
  }

  // Xvfb in its own mount and network namespace, reachable only through x11_dir (as in a
  // user's container).
  static void start_session_display() {
    ASSERT_TRUE(fs::exists("/tmp/.X11-unix")) << "/tmp/.X11-unix is missing";
    s->display = free_display(170);
    ASSERT_GT(s->display, 0);
    const std::string display = ":" + std::to_string(s->display);
    ASSERT_EQ(run_quiet({"xauth", "-f", s->xauth, "add", display, ".", random_hex(16)}), 0);
    SpawnOptions o;
    o.stderr_file = s->dir->path() + "/xvfb.log";
    auto x = Child::spawn({"unshare", "--mount", "--net", "--propagation", "private", "sh", "-c",
                           "mount --bind \"$0\" /tmp/.X11-unix && exec Xvfb \"$1\" -auth \"$2\" "
                           "-nolisten tcp -screen 0 1024x768x24",
                           s->x11_dir, display, s->xauth},
                          o);
    ASSERT_TRUE(x) << x.error().str();
    s->xvfb = std::move(*x);
    ASSERT_TRUE(wait_until([] { return fs::exists(s->x11_dir + "/X" + std::to_string(s->display)); },
                           15s))
        << read_text_file(o.stderr_file);
  }

  static void start_pattern() {
    SpawnOptions o;
    o.env = {{"DISPLAY", ":" + std::to_string(s->display)}, {"XAUTHORITY", s->xauth}};
    o.stdout_file = s->dir->path() + "/pattern.ready";
    o.stderr_file = s->dir->path() + "/pattern.log";
    auto p = Child::spawn({"unshare", "--mount", "--propagation", "private", "sh", "-c",
                           "mount --bind \"$0\" /tmp/.X11-unix && exec \"$1\" --variant 3 "
                           "--ready-fd 1",
                           s->x11_dir, APPVIRT_TESTPATTERN_BIN},
                          o);
    ASSERT_TRUE(p) << p.error().str();
    s->pattern = std::move(*p);
    ASSERT_TRUE(wait_until([&] { return read_text_file(o.stdout_file).find("ready") != std::string::npos; },
                           10s))
        << read_text_file(o.stderr_file);
  }

  static void start_rdp() {
    s->rdp_log = s->dir->path() + "/rdp.log";
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd read_end(p[0]), write_end(p[1]);
    SpawnOptions o;
    o.stdout_file = s->rdp_log;
    o.stderr_file = s->rdp_log;
    o.extra_fd = write_end.get();
    auto rdp = Child::spawn({APPVIRT_RDP_BIN, "--display", ":" + std::to_string(s->display),
                             "--x11-dir", s->x11_dir, "--xauthority", s->xauth, "--listen",
                             s->socket, "--secret-file", s->secret_file, "--cert", s->cert,
                             "--key", s->key, "--run-as", "appvirt-rdp", "--ready-fd", "3"},
                            o);
    ASSERT_TRUE(rdp) << rdp.error().str();
    s->rdp = std::move(*rdp);
    write_end.reset();
    pollfd pfd{read_end.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 20000), 1) << read_text_file(s->rdp_log);
    char buf[256] = {};
    ASSERT_GT(::read(read_end.get(), buf, sizeof buf - 1), 0) << read_text_file(s->rdp_log);
    ASSERT_NE(std::string(buf).find("\"ready\":true"), std::string::npos) << buf;
  }

  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    broker_ = std::make_unique<FakeBroker>(dir_->path());
    ASSERT_TRUE(broker_->ok());
    auto g = GatewayProcess::start(APPVIRT_GATEWAY_BIN, dir_->path(), *broker_);
    ASSERT_TRUE(g) << g.error().message;
    gateway_.emplace(std::move(*g));
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- gateway log ---\n" << gateway_->log() << "\n--- appvirt-rdp log ---\n"
                << read_text_file(s->rdp_log) << "\n";
    }
    gateway_.reset();
    broker_.reset();
    dir_.reset();
  }

  FakeSession session() const { return FakeSession{"s-rdp", "dave", s->secret, s->socket, ""}; }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<FakeBroker> broker_;
  std::optional<GatewayProcess> gateway_;
};

// Pixels drawn on the session display arrive exactly at a headless client that connected to the
// gateway with a launch token.
TEST_F(GatewayRdpE2e, RdpProbeThroughTheGatewaySeesTheExactPattern) {
  const std::string token = "probe-token-" + random_hex(8);
  broker_->add_token(token, session());
  const std::string report_file = dir_->path() + "/probe.json";
  SpawnOptions o;
  o.stdout_file = report_file;
  o.stderr_file = dir_->path() + "/probe.log";
  auto probe = Child::spawn({APPVIRT_RDP_PROBE_BIN, "127.0.0.1:" + std::to_string(gateway_->port()),
                             "--cookie", "Cookie: msts=" + token, "--lossless", "--expect-pattern",
                             "3", "--wait-match", "--timeout-ms", "20000"},
                            o);
  ASSERT_TRUE(probe) << probe.error().str();
  auto code = probe->wait_exit(30000ms);
  ASSERT_TRUE(code);
  std::string report = read_text_file(report_file);
  EXPECT_EQ(*code, 0) << report << read_text_file(o.stderr_file);
  auto j = nlohmann::json::parse(report, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << report;
  EXPECT_EQ(j["connected"], true);
  EXPECT_EQ(j["match"], true) << report;
  EXPECT_EQ(j["mismatched_pixels"], 0);
  ASSERT_EQ(broker_->redeems().size(), 1u);
  EXPECT_TRUE(broker_->redeems()[0].ok);
  // The relay carried the whole session; its log line counts the bytes.
  ASSERT_TRUE(gateway_->wait_log("route=token user=dave session=s-rdp", 1, 10s));
  std::string log = gateway_->log();
  auto pos = log.find("bytes_to_client=");
  ASSERT_NE(pos, std::string::npos);
  EXPECT_GT(std::stoull(log.substr(pos + 16)), 100'000u);  // a 1024x768 screen went through
  EXPECT_EQ(log.find(s->secret), std::string::npos);
  EXPECT_EQ(log.find(token), std::string::npos);
}

// A plain RDP client with a user name and password: the logon front asks the broker, redirects
// the client with the issued token, and xfreerdp reconnects and reaches the real session.
TEST_F(GatewayRdpE2e, XfreerdpLogonIsRedirectedIntoTheSession) {
  auto client_x = Xvfb::start(dir_->path(), 1024, 768);
  ASSERT_TRUE(client_x) << client_x.error().str();
  broker_->add_user("dave", "s3cret pass", session());
  const size_t connected_before = count_in(read_text_file(s->rdp_log), "rdp-client-connected");
  SpawnOptions o;
  o.env = client_x->client_env();
  o.stdout_file = dir_->path() + "/xfreerdp.log";
  o.stderr_file = o.stdout_file;
  auto client = Child::spawn({"xfreerdp", "/v:127.0.0.1:" + std::to_string(gateway_->port()),
                              "/u:dave", "/p:s3cret pass", "/cert:ignore", "/log-level:WARN"},
                             o);
  ASSERT_TRUE(client) << client.error().str();
  EXPECT_TRUE(wait_until(
      [&] { return count_in(read_text_file(s->rdp_log), "rdp-client-connected") > connected_before; },
      40s))
      << read_text_file(o.stdout_file);
  EXPECT_TRUE(client->running()) << read_text_file(o.stdout_file);
  auto issued = broker_->issued_tokens();
  ASSERT_EQ(issued.size(), 1u);
  auto redeems = broker_->redeems();
  ASSERT_EQ(redeems.size(), 1u);
  EXPECT_EQ(redeems[0].token, issued[0]);
  EXPECT_TRUE(redeems[0].ok);
  EXPECT_TRUE(gateway_->wait_log("outcome=redirected", 1, 5s));
  client->terminate(3000ms);
  EXPECT_TRUE(gateway_->wait_log("route=token user=dave session=s-rdp", 1, 10s));
  EXPECT_EQ(gateway_->count_in_log("s3cret pass"), 0u);
}

}  // namespace
}  // namespace appvirt::testing
