// appvirt-gateway as a process, with a fake HTTPS broker and fake session endpoints (Unix
// sockets that record what they get): token routing with the cookie rewrite, the relay, refused
// tokens, hostile first PDUs, SIGTERM, --check-config, and the logon front with the real
// xfreerdp client under Xvfb (label e2e).
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "common/x224.h"
#include "tests/gateway/fake_broker.h"
#include "tests/gateway/gateway_process.h"
#include "tests/tools/test_support.h"

namespace appvirt::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct IgnoreSigpipe {
  IgnoreSigpipe() { ::signal(SIGPIPE, SIG_IGN); }
} ignore_sigpipe;

const std::string kSecret = "session-secret-0123456789abcdef";

class GatewayE2e : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(broker_.ok()); }

  void start_gateway(const std::string& extra = {}) {
    auto g = GatewayProcess::start(APPVIRT_GATEWAY_BIN, dir_.path(), broker_, extra);
    ASSERT_TRUE(g) << g.error().message;
    gateway_.emplace(std::move(*g));
  }

  void TearDown() override {
    if ((HasFailure() || std::getenv("APPVIRT_TEST_VERBOSE")) && gateway_) {
      std::cerr << "--- gateway log ---\n" << gateway_->log() << "\n";
    }
  }

  FakeSession session(const std::string& sock) const {
    return FakeSession{"s-1", "alice", kSecret, sock, ""};
  }

  // Reads exactly n bytes from fd within timeout.
  static std::vector<uint8_t> read_n(int fd, size_t n, std::chrono::milliseconds timeout) {
    std::vector<uint8_t> out;
    auto end = Clock::now() + timeout;
    uint8_t buf[65536];
    while (out.size() < n && Clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
      if (r <= 0) break;
      out.insert(out.end(), buf, buf + r);
    }
    return out;
  }

  TempDir dir_;
  FakeBroker broker_{dir_.path()};
  std::optional<GatewayProcess> gateway_;
};

// The whole token path: the endpoint gets the request with the session secret instead of the
// token (TPKT length and X.224 LI fixed, everything else identical), then bytes flow both ways
// unchanged, and the log has one line with user, session and byte counts - no token, no secret.
TEST_F(GatewayE2e, TokenIsRewrittenToTheSecretAndBytesRelayBothWays) {
  const std::string sock = dir_.path() + "/ep.sock";
  const auto down = pattern_bytes(1 << 20, 11), up = pattern_bytes((1 << 20) + 333, 12);
  FakeEndpoint endpoint(sock, down);
  const std::string token = "launch-token-AbCdEf0123456789";
  broker_.add_token(token, session(sock));
  start_gateway();

  UniqueFd c = connect_loopback(gateway_->port());
  ASSERT_TRUE(c);
  auto original = connection_request("Cookie: msts=" + token, /*correlation_info=*/true);
  ASSERT_TRUE(send_all(c.get(), original));
  std::vector<uint8_t> got;
  std::thread reader([&] { got = read_n(c.get(), down.size(), 20s); });
  ASSERT_TRUE(send_all(c.get(), up));
  reader.join();
  ::shutdown(c.get(), SHUT_WR);
  ASSERT_TRUE(endpoint.wait_done(0, 20s));
  EXPECT_TRUE(time_to_close(c.get(), 5s));  // the endpoint closed: so does the client side

  auto seen = endpoint.seen(0);
  const auto& pdu = seen.first_pdu;
  ASSERT_GE(pdu.size(), 11u);
  EXPECT_EQ(pdu[0], 3);
  EXPECT_EQ((size_t(pdu[2]) << 8 | pdu[3]), pdu.size());  // TPKT length
  EXPECT_EQ(pdu[4], pdu.size() - 5);                       // X.224 length indicator
  auto rewritten = x224::parse_connection_request(pdu);
  auto before = x224::parse_connection_request(original);
  ASSERT_TRUE(rewritten) << rewritten.error().message;
  EXPECT_EQ(rewritten->cookie, "Cookie: msts=" + kSecret);
  EXPECT_EQ(rewritten->negotiation, before->negotiation);  // incl. correlation info
  EXPECT_EQ(rewritten->src_ref, before->src_ref);
  EXPECT_EQ(pdu.size(), original.size() - token.size() + kSecret.size());
  EXPECT_TRUE(seen.received == up) << seen.received.size();
  EXPECT_TRUE(got == down) << got.size();

  ASSERT_TRUE(gateway_->wait_log("route=token", 1, 5s));
  std::string log = gateway_->log();
  EXPECT_NE(log.find("user=alice session=s-1 bytes_from_client=" + std::to_string(up.size()) +
                     " bytes_to_client=" + std::to_string(down.size())),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("splice=yes"), std::string::npos);
  EXPECT_EQ(log.find(token), std::string::npos);
  EXPECT_EQ(log.find(kSecret), std::string::npos);
  EXPECT_EQ(broker_.unauthorized(), 0u);
}

TEST_F(GatewayE2e, UnknownTokenIsClosedAndTheEndpointNeverSeesIt) {
  const std::string sock = dir_.path() + "/ep.sock";
  FakeEndpoint endpoint(sock, {});
  start_gateway();
  UniqueFd c = connect_loopback(gateway_->port());
  ASSERT_TRUE(send_all(c.get(), connection_request("Cookie: msts=no-such-token")));
  auto closed = time_to_close(c.get(), 5s);
  ASSERT_TRUE(closed);
  ASSERT_TRUE(broker_.wait_redeems(1, 1s));
  EXPECT_FALSE(broker_.redeems()[0].ok);
  EXPECT_EQ(endpoint.accepted(), 0u);
  EXPECT_TRUE(gateway_->wait_log("reason=\"token refused", 1, 3s));
}

TEST_F(GatewayE2e, ATokenWorksOnlyOnce) {
  const std::string sock = dir_.path() + "/ep.sock";
  FakeEndpoint endpoint(sock, {1, 2, 3});
  broker_.add_token("once-only-token", session(sock));
  start_gateway();
  UniqueFd first = connect_loopback(gateway_->port());
  ASSERT_TRUE(send_all(first.get(), connection_request("Cookie: msts=once-only-token")));
  EXPECT_EQ(read_n(first.get(), 3, 5s), (std::vector<uint8_t>{1, 2, 3}));

  UniqueFd second = connect_loopback(gateway_->port());
  ASSERT_TRUE(send_all(second.get(), connection_request("Cookie: msts=once-only-token")));
  EXPECT_TRUE(time_to_close(second.get(), 5s));
  auto redeems = broker_.redeems();
  ASSERT_EQ(redeems.size(), 2u);
  EXPECT_TRUE(redeems[0].ok);
  EXPECT_FALSE(redeems[1].ok);
  EXPECT_EQ(endpoint.accepted(), 1u);
}

// Garbage, an oversized announcement, a request cut short by the client closing, a truncated
// request left hanging, and a slowloris: each is closed - the first three at once, the last two
// at the 5 s first-PDU timeout - while a good client is routed at once meanwhile.
TEST_F(GatewayE2e, HostileFirstPdusAreClosedWhileOthersAreServed) {
  const std::string sock = dir_.path() + "/ep.sock";
  FakeEndpoint endpoint(sock, {});
  broker_.add_token("good-token-1", session(sock));
  start_gateway();
  const uint16_t port = gateway_->port();
  auto good_pdu = connection_request("Cookie: msts=good-token-1");

  HostileClients hostile;
  ASSERT_TRUE(hostile.open(port, good_pdu));
  auto start = hostile.opened_at();
  auto refused = hostile.wait_refused(2s);
  for (const auto& closed : refused) EXPECT_TRUE(closed && *closed < 1s);

  UniqueFd good = connect_loopback(port);
  ASSERT_TRUE(send_all(good.get(), good_pdu));
  while (endpoint.accepted() == 0 && Clock::now() - start < 3s) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(endpoint.accepted(), 1u);
  EXPECT_LT(Clock::now() - start, 3s);

  auto timed_out = hostile.wait_timed_out(8s);
  auto total = Clock::now() - start;
  ASSERT_TRUE(timed_out[0] && timed_out[1]);
  EXPECT_GT(total, 4500ms);  // the 5 s timeout, not earlier
  EXPECT_LT(total, 6500ms);
  EXPECT_TRUE(gateway_->wait_log("reason=\"timeout waiting for the connection request\"", 2, 2s));
  EXPECT_EQ(gateway_->count_in_log("reason=\"connection request truncated by the client closing\""), 1u);
  EXPECT_EQ(gateway_->count_in_log("reason=\"x224: not a TPKT header"), 1u);
  EXPECT_EQ(gateway_->count_in_log("exceeds 4 KiB"), 1u);
  EXPECT_FALSE(gateway_->child().wait_exit(0ms));  // still running
}

TEST_F(GatewayE2e, SigtermEndsOpenConnectionsAndExitsZero) {
  const std::string sock = dir_.path() + "/ep.sock";
  FakeEndpoint endpoint(sock, {7});
  broker_.add_token("sigterm-token", session(sock));
  start_gateway();
  UniqueFd routed = connect_loopback(gateway_->port());
  ASSERT_TRUE(send_all(routed.get(), connection_request("Cookie: msts=sigterm-token")));
  ASSERT_EQ(read_n(routed.get(), 1, 5s).size(), 1u);
  UniqueFd waiting = connect_loopback(gateway_->port());
  std::this_thread::sleep_for(200ms);
  ::kill(gateway_->child().pid(), SIGTERM);
  auto code = gateway_->child().wait_exit(5000ms);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
  EXPECT_TRUE(time_to_close(routed.get(), 2s));
  EXPECT_TRUE(time_to_close(waiting.get(), 2s));
  EXPECT_EQ(gateway_->count_in_log("reason=shutdown"), 2u) << gateway_->log();
  EXPECT_EQ(gateway_->count_in_log("gateway-stopped"), 1u);
}

TEST_F(GatewayE2e, CheckConfigAndHelp) {
  std::string good = write_gateway_config(dir_.path(), link_to(broker_), "");
  auto r = run_capture({APPVIRT_GATEWAY_BIN, "--config", good, "--check-config"}, 10000ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 0) << r->out;
  EXPECT_NE(r->out.find(": ok"), std::string::npos);

  std::string bad = dir_.path() + "/bad.toml";
  std::ofstream(bad) << "[listen]\nport = -1\n[broker]\nurl = \"https://b:1\"\nca_file = \"/x\"\n"
                        "secret_file = \"/y\"\nbogus = 1\n";
  SpawnOptions o;
  o.stderr_file = dir_.path() + "/bad.err";
  auto b = run_capture({APPVIRT_GATEWAY_BIN, "--config", bad, "--check-config"}, 10000ms, o);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->exit_code, 2);
  std::string err = read_text_file(o.stderr_file);
  EXPECT_NE(err.find(bad + ":2: listen.port:"), std::string::npos) << err;
  EXPECT_NE(err.find(bad + ":7: broker.bogus: unknown key"), std::string::npos) << err;

  // Valid syntax, but the files it names do not load.
  std::string missing = dir_.path() + "/missing.toml";
  std::ofstream(missing) << "[broker]\nurl = \"https://b:1\"\nca_file = \"/nonexistent/ca.crt\"\n"
                            "secret_file = \"" << broker_.secret_file() << "\"\n";
  auto m = run_capture({APPVIRT_GATEWAY_BIN, "--config", missing, "--check-config"}, 10000ms, o);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->exit_code, 2);

  auto h = run_capture({APPVIRT_GATEWAY_BIN, "--help"}, 10000ms);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->exit_code, 0);
  EXPECT_NE(h->out.find("--check-config"), std::string::npos);
}

// ---------------------------------------------------------------- logon front with xfreerdp

class LogonFrontE2e : public GatewayE2e {
 protected:
  void SetUp() override {
    GatewayE2e::SetUp();
    auto x = Xvfb::start(dir_.path(), 1024, 768);
    ASSERT_TRUE(x) << x.error().str();
    xvfb_.emplace(std::move(*x));
  }
  void TearDown() override {
    if (HasFailure() || std::getenv("APPVIRT_TEST_VERBOSE")) {
      std::cerr << "--- xfreerdp log ---\n" << read_text_file(client_log_) << "\n";
    }
    GatewayE2e::TearDown();
  }
  Child xfreerdp(const std::string& user, const std::string& password, const std::string& tag) {
    client_log_ = dir_.path() + "/xfreerdp-" + tag + ".log";
    SpawnOptions o;
    o.env = xvfb_->client_env();
    o.stdout_file = client_log_;
    o.stderr_file = client_log_;
    auto c = Child::spawn({"xfreerdp", "/v:127.0.0.1:" + std::to_string(gateway_->port()),
                           "/u:" + user, "/p:" + password, "/cert:ignore", "/log-level:INFO",
                           "/shell:testapp"},
                          o);
    EXPECT_TRUE(c) << c.error().str();
    return c ? std::move(*c) : Child();
  }

  // SIGTERM after logon-front work: exit 0 (with a sanitizer build: no leak, no error at exit).
  void expect_clean_stop() {
    ::kill(gateway_->child().pid(), SIGTERM);
    auto code = gateway_->child().wait_exit(10000ms);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 0) << gateway_->log();
  }

  std::optional<Xvfb> xvfb_;
  std::string client_log_;
};

// xfreerdp logs on with user name and password; the gateway asks the broker, redirects the
// client with the token the broker issued, and the client comes back with that token, which the
// gateway redeems and routes: the endpoint sees the session secret.
TEST_F(LogonFrontE2e, GoodPasswordRedirectsAndTheClientComesBackWithTheToken) {
  const std::string sock = dir_.path() + "/ep.sock";
  FakeEndpoint endpoint(sock, {});
  broker_.add_user("carol", "correct horse", session(sock));
  start_gateway();
  Child client = xfreerdp("carol", "correct horse", "good");
  ASSERT_TRUE(broker_.wait_redeems(1, 30s)) << gateway_->log();
  auto issued = broker_.issued_tokens();
  ASSERT_EQ(issued.size(), 1u);
  auto redeems = broker_.redeems();
  ASSERT_EQ(redeems.size(), 1u);
  EXPECT_EQ(redeems[0].token, issued[0]);
  EXPECT_TRUE(redeems[0].ok);
  auto first = endpoint.wait_first_pdu(0, 20s);
  ASSERT_TRUE(first);
  auto request = x224::parse_connection_request(*first);
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->cookie, "Cookie: msts=" + kSecret);
  auto logons = broker_.logons();
  ASSERT_EQ(logons.size(), 1u);
  EXPECT_EQ(logons[0].username, "carol");
  EXPECT_EQ(logons[0].app, "testapp");
  EXPECT_EQ(logons[0].client_address, "127.0.0.1");
  EXPECT_TRUE(gateway_->wait_log("outcome=redirected", 1, 10s));
  EXPECT_EQ(gateway_->count_in_log("correct horse"), 0u);
  EXPECT_EQ(gateway_->count_in_log(issued[0]), 0u);
  client.terminate(1000ms);
  expect_clean_stop();
}

TEST_F(LogonFrontE2e, WrongPasswordIsRefusedWithoutRedirect) {
  const std::string sock = dir_.path() + "/ep.sock";
  FakeEndpoint endpoint(sock, {});
  broker_.add_user("carol", "correct horse", session(sock));
  start_gateway();
  Child client = xfreerdp("carol", "wrong horse", "bad");
  auto code = client.wait_exit(30000ms);
  ASSERT_TRUE(code) << "xfreerdp still running after a refused logon";
  EXPECT_NE(*code, 0);
  auto logons = broker_.logons();
  ASSERT_EQ(logons.size(), 1u);
  EXPECT_FALSE(logons[0].ok);
  EXPECT_TRUE(broker_.redeems().empty());
  EXPECT_TRUE(broker_.issued_tokens().empty());
  EXPECT_EQ(endpoint.accepted(), 0u);
  EXPECT_TRUE(gateway_->wait_log("outcome=refused", 1, 5s));
  EXPECT_EQ(gateway_->count_in_log("wrong horse"), 0u);
  std::string client_log = read_text_file(client_log_);
  EXPECT_NE(client_log.find("LOGON_FAILED_BAD_PASSWORD"), std::string::npos) << client_log;
  EXPECT_NE(client_log.find("ERRINFO_SERVER_DENIED_CONNECTION"), std::string::npos) << client_log;
  expect_clean_stop();
}

}  // namespace
}  // namespace appvirt::testing
