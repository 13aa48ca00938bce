// The whole stack end to end (label e2e, needs root): real appvirt-hostd + appvirt-broker +
// appvirt-gateway (tests/e2e/stack.h) and real clients: xfreerdp on its own Xvfb, whose screen is
// grabbed and searched for the test pattern, and rdp-probe, which checks exact pixels. Every
// client goes through the gateway, as a user's would.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <list>
#include <thread>

#include "common/unique_fd.h"
#include "tests/e2e/screen.h"
#include "tests/e2e/stack.h"

namespace appvirt::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::Child;
using testing::Xvfb;
using Clock = std::chrono::steady_clock;

Binaries binaries() {
  return Binaries{APPVIRT_HOSTD, APPVIRT_BROKER,      APPVIRT_GATEWAY, APPVIRT_SANDBOX,
                  APPVIRT_RDP,   APPVIRT_TESTPATTERN, RDP_PROBE,       APPVIRT_PAM_FILE};
}

size_t count_in(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// rdp-probe arguments for an exact comparison of `variant` through the gateway with a token.
std::vector<std::string> exact(const std::string& token, int variant) {
  return {"--cookie", "Cookie: msts=" + token, "--lossless", "--expect-pattern",
          std::to_string(variant), "--wait-match", "--timeout-ms", "30000"};
}

class FullStackE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_ = std::make_unique<FullStack>(binaries());
    auto started = stack_->start();
    ASSERT_TRUE(started) << started.error().str() << "\n" << stack_->logs();
    const std::string client_dir = stack_->dir() + "/client";
    fs::create_directories(client_dir);
    // Larger than the session (1024x768), so the whole remote desktop fits on the client screen.
    auto x = Xvfb::start(client_dir, 1280, 1024);
    ASSERT_TRUE(x) << x.error().str();
    client_x_.emplace(std::move(*x));
  }

  void TearDown() override {
    if (HasFailure() && stack_) {
      std::cerr << stack_->logs();
      for (const auto& tag : xfreerdp_tags_) {
        std::cerr << "--- xfreerdp " << tag << " ---\n" << stack_->xfreerdp_log(tag) << "\n";
      }
    }
    for (auto& c : clients_) c.terminate(2s);
    clients_.clear();
    client_x_.reset();
    stack_.reset();
  }

  const broker::e2e::TempUser& user() { return stack_->user(); }

  WebSession sign_in() {
    auto web = stack_->login(user().name(), user().password());
    EXPECT_TRUE(web) << web.error().str();
    return web ? *web : WebSession{};
  }

  Launch launch(const WebSession& web, const std::string& app = kPatternApp) {
    auto l = stack_->launch(web, app);
    EXPECT_TRUE(l) << l.error().str();
    if (!l) return {};
    EXPECT_EQ(l->status, 200u) << l->error_body << stack_->broker_log();
    return *l;
  }

  // xfreerdp with these arguments on the client display; kept until the test ends.
  Child* xfreerdp(const std::vector<std::string>& args, const std::string& tag) {
    xfreerdp_tags_.push_back(tag);
    auto c = stack_->xfreerdp(*client_x_, args, tag);
    EXPECT_TRUE(c) << c.error().str();
    if (!c) return nullptr;
    clients_.push_back(std::move(*c));
    return &clients_.back();
  }

  PatternMatch wait_pattern(int variant, std::chrono::milliseconds timeout = 45s) {
    return wait_for_pattern(client_x_->display(), client_x_->xauthority(), variant, kSessionWidth,
                            kSessionHeight, timeout);
  }

  // The screen shows `variant` and not its neighbour: the tolerant search does tell variants apart.
  void expect_pattern_shown(int variant) {
    PatternMatch seen = wait_pattern(variant);
    EXPECT_TRUE(seen.visible()) << "variant " << variant << ": " << seen.str();
    auto shot = grab_screen(client_x_->display(), client_x_->xauthority());
    ASSERT_TRUE(shot) << shot.error().str();
    PatternMatch other = find_pattern(*shot, variant + 1, kSessionWidth, kSessionHeight);
    EXPECT_FALSE(other.visible()) << "variant " << variant + 1 << " matched too: " << other.str();
  }

  std::vector<std::string> logon_args(const std::string& password) const {
    return {"/v:" + stack_->gateway_address(), "/u:" + stack_->user().name(), "/p:" + password,
            "/cert:ignore", "/log-level:INFO"};
  }

  std::unique_ptr<FullStack> stack_;
  std::optional<Xvfb> client_x_;
  std::list<Child> clients_;
  std::vector<std::string> xfreerdp_tags_;
};

// Portal sign-in + launch → the .rdp file opened by xfreerdp through the gateway shows the app;
// a second launch of the same app gives rdp-probe exact pixels through the gateway.
TEST_F(FullStackE2e, PortalLaunchRdpFileInXfreerdpAndExactPixelsThroughTheGateway) {
  WebSession web = sign_in();
  Launch first = launch(web);
  ASSERT_EQ(first.status, 200u);
  ASSERT_EQ(first.token.size(), 43u) << first.rdp_file;
  EXPECT_EQ(token_of_rdp_file(first.rdp_file), first.token);
  EXPECT_NE(first.rdp_file.find("full address:s:" + stack_->gateway_address() + "\r\n"),
            std::string::npos)
      << first.rdp_file;
  const std::string rdp_path = stack_->dir() + "/pattern.rdp";
  std::ofstream(rdp_path) << first.rdp_file;
  ASSERT_NE(xfreerdp({rdp_path, "/cert:ignore", "/log-level:INFO"}, "rdpfile"), nullptr);
  expect_pattern_shown(0);
  clients_.back().terminate(3s);
  // The gateway logs the routed connection when it ends.
  EXPECT_TRUE(stack_->gateway().wait_log(
      "route=token user=" + user().name() + " session=" + first.session_id, 1, 10s));

  Launch again = launch(web);
  EXPECT_EQ(again.session_id, first.session_id);
  EXPECT_TRUE(again.reused);
  ProbeRun run = stack_->probe(exact(again.token, 0), 45s, "probe");
  EXPECT_EQ(run.exit_code, 0) << run.str();
  EXPECT_EQ(run.report.value("match", false), true) << run.str();
  EXPECT_EQ(run.report.value("mismatched_pixels", -1), 0) << run.str();

  std::string logs = stack_->gateway().log() + stack_->broker_log();
  EXPECT_EQ(logs.find(user().password()), std::string::npos) << "a password reached a log";
  EXPECT_EQ(logs.find(first.token), std::string::npos) << "a launch token reached a log";
}

// A plain RDP client (user name and password, no token): logon front → broker logon (PAM) →
// Server Redirection with a fresh token → the client comes back and sees the app.
TEST_F(FullStackE2e, XfreerdpWithoutTokenIsLoggedOnAndRedirectedIntoTheApp) {
  ASSERT_NE(xfreerdp(logon_args(user().password()), "logon"), nullptr);
  expect_pattern_shown(0);
  EXPECT_TRUE(stack_->gateway().wait_log("outcome=redirected", 1, 5s));
  auto sessions = stack_->hostd_sessions();
  ASSERT_TRUE(sessions) << sessions.error().str();
  ASSERT_EQ(sessions->size(), 1u) << sessions->dump();
  const std::string id = (*sessions)[0].value("session_id", "");
  WebSession web = sign_in();
  auto mine = stack_->my_sessions(web);
  ASSERT_TRUE(mine) << mine.error().str();
  ASSERT_EQ(mine->size(), 1u) << mine->dump();
  EXPECT_EQ((*mine)[0].value("session_id", ""), id);
  EXPECT_EQ((*mine)[0].value("app_id", ""), kPatternApp);
  EXPECT_EQ(count_in(stack_->gateway().log(), user().password()), 0u);
  EXPECT_EQ(count_in(stack_->broker_log(), user().password()), 0u);
}

// A wrong password through the gateway: refused with the RDP logon error, and nothing started.
TEST_F(FullStackE2e, WrongPasswordThroughTheGatewayIsRefusedAndStartsNoSession) {
  Child* client = xfreerdp(logon_args("not-" + user().password()), "wrong");
  ASSERT_NE(client, nullptr);
  auto code = client->wait_exit(40s);
  ASSERT_TRUE(code) << "xfreerdp still running after a refused logon";
  EXPECT_NE(*code, 0);
  std::string log = stack_->xfreerdp_log("wrong");
  EXPECT_NE(log.find("LOGON_FAILED_BAD_PASSWORD"), std::string::npos) << log;
  EXPECT_NE(log.find("ERRINFO_SERVER_DENIED_CONNECTION"), std::string::npos) << log;
  EXPECT_TRUE(stack_->gateway().wait_log("outcome=refused", 1, 5s));
  EXPECT_EQ(stack_->gateway().count_in_log("outcome=redirected"), 0u);
  auto on_host = stack_->hostd_sessions();
  ASSERT_TRUE(on_host) << on_host.error().str();
  EXPECT_TRUE(on_host->empty()) << on_host->dump();
  WebSession web = sign_in();
  auto mine = stack_->my_sessions(web);
  ASSERT_TRUE(mine) << mine.error().str();
  EXPECT_TRUE(mine->empty()) << mine->dump();
  auto metrics = broker::e2e::https(stack_->broker_port(), "GET", "/metrics");
  ASSERT_TRUE(metrics) << metrics.error().str();
  EXPECT_NE(metrics->body.find("appvirt_broker_logins_total{channel=\"gateway\",result=\"denied\"} 1"),
            std::string::npos)
      << "the broker did not refuse exactly one gateway logon:\n" << metrics->body;
}

// Hostile first PDUs against the gateway of the full stack are closed (garbage, oversized, cut at
// once; truncated and slowloris at the 5 s first-PDU timeout) while a real client is served.
TEST_F(FullStackE2e, HostileFirstPdusAreClosedWhileARealClientIsServed) {
  WebSession web = sign_in();
  Launch l = launch(web);
  ASSERT_EQ(l.status, 200u);
  auto valid = testing::connection_request("Cookie: msts=" + l.token);
  testing::HostileClients hostile;
  ASSERT_TRUE(hostile.open(stack_->gateway_port(), valid));
  const auto start = hostile.opened_at();
  auto probe = stack_->spawn_probe(exact(l.token, 0), "probe");
  ASSERT_TRUE(probe) << probe.error().str();
  const auto probe_started = Clock::now();
  auto refused = hostile.wait_refused(2s);
  for (const auto& closed : refused) EXPECT_TRUE(closed && *closed < 1s);
  auto timed_out = hostile.wait_timed_out(8s);
  const auto total = Clock::now() - start;
  ASSERT_TRUE(timed_out[0] && timed_out[1]);
  EXPECT_GT(total, 4500ms);  // the 5 s timeout, not earlier
  EXPECT_LT(total, 6500ms);
  ProbeRun run = stack_->collect_probe(*probe, "probe", 45s);
  EXPECT_EQ(run.exit_code, 0) << run.str();
  EXPECT_EQ(run.report.value("match", false), true) << run.str();
  // It was served while the hostile connections were still open, not after them.
  if (run.report.contains("connected_ms") && run.report["connected_ms"].is_number()) {
    auto connected_at = probe_started + std::chrono::milliseconds(run.report["connected_ms"].get<int>());
    EXPECT_LT(connected_at - start, 4500ms) << run.str();
  }
  auto& gw = stack_->gateway();
  EXPECT_TRUE(gw.wait_log("reason=\"timeout waiting for the connection request\"", 2, 2s));
  EXPECT_EQ(gw.count_in_log("reason=\"connection request truncated by the client closing\""), 1u);
  EXPECT_EQ(gw.count_in_log("reason=\"x224: not a TPKT header"), 1u);
  EXPECT_EQ(gw.count_in_log("exceeds 4 KiB"), 1u);
  EXPECT_FALSE(gw.child().wait_exit(0ms)) << "the gateway died";
}

// Reconnect: type into the app, disconnect, launch again from the portal → same session, the
// typed state is still there; log on again through the gateway → same session and state.
TEST_F(FullStackE2e, ReconnectKeepsTheSessionAndTheAppState) {
  WebSession web = sign_in();
  Launch first = launch(web);
  ASSERT_EQ(first.status, 200u);
  // The app advances its variant on every key press; 'a' is one press.
  std::vector<std::string> typing = exact(first.token, 1);
  typing.insert(typing.end(), {"--type-text", "a"});
  ProbeRun typed = stack_->probe(typing, 45s, "typed");
  ASSERT_EQ(typed.exit_code, 0) << typed.str();
  EXPECT_EQ(typed.report.value("keys_sent", 0), 1);

  Launch again = launch(web);
  EXPECT_EQ(again.session_id, first.session_id);
  EXPECT_TRUE(again.reused);
  ProbeRun back = stack_->probe(exact(again.token, 1), 45s, "back");
  EXPECT_EQ(back.exit_code, 0) << "the typed state is gone: " << back.str();

  ASSERT_NE(xfreerdp(logon_args(user().password()), "relogon"), nullptr);
  expect_pattern_shown(1);
  EXPECT_TRUE(stack_->gateway().wait_log(
      "route=logon user=" + user().name() + " session=" + first.session_id, 1, 10s));
  // The broker learns that a client is connected again from its host poll (1 s here); the
  // reconnect itself may have stored `disconnected` (the client was not yet attached).
  std::string state;
  nlohmann::json listing;
  for (auto deadline = Clock::now() + 5s; Clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
    auto mine = stack_->my_sessions(web);
    ASSERT_TRUE(mine) << mine.error().str();
    ASSERT_EQ(mine->size(), 1u) << mine->dump();
    EXPECT_EQ((*mine)[0].value("session_id", ""), first.session_id);
    listing = *mine;
    state = (*mine)[0].value("state", "");
    if (state == "running") break;
  }
  EXPECT_EQ(state, "running") << listing.dump();
}

// A launch token works once: a second connection with it is refused while the first is served.
TEST_F(FullStackE2e, ATokenUsedTwiceIsRefusedTheSecondTime) {
  WebSession web = sign_in();
  Launch l = launch(web);
  ASSERT_EQ(l.status, 200u);
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd ready_read(p[0]), ready_write(p[1]);
  std::vector<std::string> hold = exact(l.token, 0);
  hold.insert(hold.end(), {"--hold-ms", "5000", "--ready-fd", "3"});
  auto first = stack_->spawn_probe(hold, "first", ready_write.get());
  ASSERT_TRUE(first) << first.error().str();
  ready_write.reset();
  pollfd pfd{ready_read.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 45000), 1) << "the first client never matched";
  char buf[16] = {};
  ASSERT_GT(::read(ready_read.get(), buf, sizeof buf - 1), 0);

  ProbeRun second = stack_->probe(exact(l.token, 0), 45s, "second");
  EXPECT_NE(second.exit_code, 0) << second.str();
  EXPECT_EQ(second.report.value("connected", true), false) << second.str();
  EXPECT_TRUE(stack_->gateway().wait_log("token refused", 1, 5s));

  ProbeRun held = stack_->collect_probe(*first, "first", 30s);
  EXPECT_EQ(held.exit_code, 0) << held.str();
  EXPECT_EQ(held.report.value("match", false), true) << held.str();
}

}  // namespace
}  // namespace appvirt::e2e
