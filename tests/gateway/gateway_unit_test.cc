// Pieces of appvirt-gateway, in-process, on real sockets: config, first-PDU routing decisions,
// the splice relay, the HTTPS broker client against a fake HTTPS broker, logon refusal codes,
// and the connection handling of GatewayServer with a fake broker and a fake endpoint.
#include <arpa/inet.h>
#include <fcntl.h>
#include <freerdp/error.h>
#include <freerdp/settings.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <thread>

#include "common/tls_cert.h"
#include "common/x224.h"
#include "gateway/first_pdu.h"
#include "gateway/gateway_config.h"
#include "gateway/gateway_server.h"
#include "gateway/https_broker_client.h"
#include "gateway/logon_front.h"
#include "gateway/relay.h"
#include "tests/gateway/fake_broker.h"
#include "tests/tools/test_support.h"

namespace {

namespace asio = boost::asio;
using namespace appvirt;
using namespace appvirt::gateway;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using appvirt::testing::FakeBroker;
using appvirt::testing::FakeEndpoint;
using appvirt::testing::FakeSession;
using appvirt::testing::pattern_bytes;
using appvirt::testing::TempDir;

struct IgnoreSigpipe {
  IgnoreSigpipe() { ::signal(SIGPIPE, SIG_IGN); }
} ignore_sigpipe;

// Runs one awaitable to completion on a fresh io_context.
template <class T>
T run_co(asio::awaitable<T> a) {
  asio::io_context io;
  std::optional<T> out;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out = std::move(v);
  });
  io.run();
  return std::move(*out);
}

std::vector<uint8_t> connection_request(const std::optional<std::string>& cookie) {
  x224::ConnectionRequest req;
  req.cookie = cookie;
  req.negotiation = x224::NegotiationRequest{0, 3, std::nullopt};  // TLS | HYBRID
  return *x224::serialize(req);
}

// ---------------------------------------------------------------- config

const char* kGoodConfig = R"(
log_level = "debug"
[listen]
address = "127.0.0.1"
port = 0
[limits]
max_pre_routing = 10
[broker]
url = "https://127.0.0.1:8443"
ca_file = "/etc/appvirt/broker.crt"
secret_file = "/etc/appvirt/gateway.secret"
[logon]
enabled = false
)";

TEST(GatewayConfig, ValidFileWithDefaults) {
  auto c = parse_gateway_config(kGoodConfig, "gateway.toml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->listen.address, "127.0.0.1");
  EXPECT_EQ(c->listen.port, 0);
  EXPECT_EQ(c->limits.max_pre_routing, 10u);
  EXPECT_EQ(c->limits.max_connections, 4096u);
  EXPECT_EQ(c->limits.first_pdu_timeout, 5000ms);
  EXPECT_EQ(c->broker.host, "127.0.0.1");
  EXPECT_EQ(c->broker.port, 8443);
  EXPECT_FALSE(c->logon.enabled);
  EXPECT_EQ(c->prefer, EndpointPreference::kUnix);
  EXPECT_EQ(c->relay_mode, RelayMode::kSplice);
  auto copy = parse_gateway_config(std::string(kGoodConfig) + "[relay]\nmode = \"copy\"\n[endpoints]\nprefer = \"tcp\"\n", "g.toml");
  ASSERT_TRUE(copy) << copy.error().message;
  EXPECT_EQ(copy->relay_mode, RelayMode::kCopy);
  EXPECT_EQ(copy->prefer, EndpointPreference::kTcp);
  auto bad = parse_gateway_config(std::string(kGoodConfig) + "[relay]\nmode = \"zero-copy\"\n", "g.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("g.toml:15: relay.mode:"), std::string::npos) << bad.error().message;
}

TEST(GatewayConfig, EveryProblemNamesFileLineAndKey) {
  const char* text = R"(log_level = "chatty"
[listen]
port = 99999
address = "localhost"
[limits]
max_connections = 5
max_pre_routing = 6
[broker]
url = "http://broker:1"
ca_file = "relative.crt"
secret_file = "/s"
colour = "blue"
)";
  auto c = parse_gateway_config(text, "gw.toml");
  ASSERT_FALSE(c);
  const std::string& m = c.error().message;
  EXPECT_NE(m.find("gw.toml:1: log_level:"), std::string::npos) << m;
  EXPECT_NE(m.find("gw.toml:3: listen.port:"), std::string::npos) << m;
  EXPECT_NE(m.find("gw.toml:4: listen.address:"), std::string::npos) << m;
  EXPECT_NE(m.find("gw.toml:7: limits.max_pre_routing: must not exceed"), std::string::npos) << m;
  EXPECT_NE(m.find("gw.toml:9: broker.url: must start with https://"), std::string::npos) << m;
  EXPECT_NE(m.find("gw.toml:10: broker.ca_file: must be an absolute path"), std::string::npos) << m;
  EXPECT_NE(m.find("gw.toml:12: broker.colour: unknown key"), std::string::npos) << m;
}

TEST(GatewayConfig, MissingBrokerSettingsAreReported) {
  auto c = parse_gateway_config("[listen]\nport = 1\n", "gw.toml");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("broker.url: required"), std::string::npos);
  EXPECT_NE(c.error().message.find("broker.secret_file: required"), std::string::npos);
}

TEST(GatewayConfig, HttpsUrls) {
  EXPECT_EQ(*parse_https_url("https://b.example:9443"), std::make_pair(std::string("b.example"), uint16_t{9443}));
  EXPECT_EQ(*parse_https_url("https://b.example/"), std::make_pair(std::string("b.example"), uint16_t{443}));
  EXPECT_EQ(*parse_https_url("https://[::1]:8443"), std::make_pair(std::string("::1"), uint16_t{8443}));
  EXPECT_FALSE(parse_https_url("http://b:1"));
  EXPECT_FALSE(parse_https_url("https://b:0"));
  EXPECT_FALSE(parse_https_url("https://b:1/internal"));
  EXPECT_FALSE(parse_https_url("https://:1"));
  EXPECT_FALSE(parse_https_url("https://u@b:1"));
}

// ---------------------------------------------------------------- first PDU

TEST(FirstPdu, RoutesByCookie) {
  x224::ConnectionRequest req;
  req.cookie = "Cookie: msts=abcDEF123";
  Route r = classify(req);
  EXPECT_EQ(r.kind, RouteKind::kToken);
  EXPECT_EQ(r.token, "abcDEF123");

  req.cookie = "Cookie: mstshash=alice";
  r = classify(req);
  EXPECT_EQ(r.kind, RouteKind::kLogon);
  EXPECT_EQ(r.hash_user, "alice");

  req.cookie.reset();
  EXPECT_EQ(classify(req).kind, RouteKind::kLogon);

  req.cookie = "tsv://MS Terminal Services Plugin.1.Sessions";
  EXPECT_EQ(classify(req).kind, RouteKind::kReject);
  req.cookie = "Cookie: msts=";
  EXPECT_EQ(classify(req).kind, RouteKind::kReject);
  req.cookie = "Cookie: msts=has space";
  EXPECT_EQ(classify(req).kind, RouteKind::kReject);
}

TEST(FirstPdu, PrefixStates) {
  auto pdu = connection_request("Cookie: msts=tok");
  EXPECT_EQ(examine_prefix({pdu.data(), 2}).kind, PrefixState::kIncomplete);
  auto partial = examine_prefix({pdu.data(), 6});
  EXPECT_EQ(partial.kind, PrefixState::kIncomplete);
  EXPECT_EQ(partial.needed, pdu.size());
  auto whole = examine_prefix(pdu);
  EXPECT_EQ(whole.kind, PrefixState::kComplete);
  EXPECT_EQ(whole.needed, pdu.size());
  const uint8_t http[] = {'G', 'E', 'T', ' '};
  EXPECT_EQ(examine_prefix(http).kind, PrefixState::kInvalid);
  const uint8_t huge[] = {3, 0, 0x20, 0};  // 8 KiB announced
  EXPECT_EQ(examine_prefix(huge).kind, PrefixState::kInvalid);
  const uint8_t too_long_for_cr[] = {3, 0, 0x02, 0x00};  // 512 bytes: LI cannot express it
  EXPECT_EQ(examine_prefix(too_long_for_cr).kind, PrefixState::kInvalid);
}

// ---------------------------------------------------------------- relay

// A connected loopback TCP pair: {accepted, connected}.
std::pair<UniqueFd, UniqueFd> tcp_pair() {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
  EXPECT_EQ(::listen(listener.get(), 1), 0);
  EXPECT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
  UniqueFd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  return {std::move(server), std::move(client)};
}

std::pair<UniqueFd, UniqueFd> unix_pair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

void write_all(int fd, const std::vector<uint8_t>& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Reads until end of stream (or the timeout); returns what came.
std::vector<uint8_t> read_to_eof(int fd, std::chrono::milliseconds timeout) {
  std::vector<uint8_t> out;
  auto end = Clock::now() + timeout;
  uint8_t buf[65536];
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

class RelayTest : public ::testing::TestWithParam<RelayMode> {};

// 3 MiB each way at the same time, then each side half-closes in turn: everything arrives
// intact and the relay reports the byte counts and who closed first.
TEST_P(RelayTest, MovesBytesBothWaysAndPassesHalfCloses) {
  auto [client_test, client_relay] = tcp_pair();
  auto [endpoint_test, endpoint_relay] = unix_pair();
  const auto up = pattern_bytes(3 << 20, 1), down = pattern_bytes(3 << 20, 2);
  asio::io_context io;
  auto relay = Relay::create(io.get_executor(), std::move(client_relay), std::move(endpoint_relay),
                             GetParam());
  std::optional<RelayStats> stats;
  asio::co_spawn(io, relay->run(), [&](std::exception_ptr, RelayStats s) { stats = s; });
  std::thread loop([&] { io.run(); });

  std::vector<uint8_t> at_endpoint, at_client;
  std::thread endpoint_reader([&] { at_endpoint = read_to_eof(endpoint_test.get(), 20s); });
  std::thread client_reader([&] { at_client = read_to_eof(client_test.get(), 20s); });
  write_all(client_test.get(), up);
  ::shutdown(client_test.get(), SHUT_WR);  // the client is done talking first
  endpoint_reader.join();                  // ... which the endpoint sees as end of stream
  write_all(endpoint_test.get(), down);    // the other direction still flows
  ::shutdown(endpoint_test.get(), SHUT_WR);
  client_reader.join();
  loop.join();

  EXPECT_TRUE(at_endpoint == up) << at_endpoint.size();
  EXPECT_TRUE(at_client == down) << at_client.size();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->from_client, up.size());
  EXPECT_EQ(stats->to_client, down.size());
  EXPECT_EQ(stats->reason, "client-closed");
  EXPECT_EQ(stats->spliced, GetParam() == RelayMode::kSplice);
}

TEST_P(RelayTest, ResetOnOneSideEndsBoth) {
  auto [client_test, client_relay] = tcp_pair();
  auto [endpoint_test, endpoint_relay] = tcp_pair();
  asio::io_context io;
  auto relay = Relay::create(io.get_executor(), std::move(client_relay), std::move(endpoint_relay),
                             GetParam());
  std::optional<RelayStats> stats;
  asio::co_spawn(io, relay->run(), [&](std::exception_ptr, RelayStats s) { stats = s; });
  std::thread loop([&] { io.run(); });
  write_all(client_test.get(), {1, 2, 3});
  // An abortive close (RST) of the endpoint.
  std::this_thread::sleep_for(100ms);
  linger l{1, 0};
  ::setsockopt(endpoint_test.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  endpoint_test.reset();
  auto rest = read_to_eof(client_test.get(), 5s);  // the client side is closed too
  loop.join();
  ASSERT_TRUE(stats);
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(stats->from_client, 3u);
  EXPECT_NE(stats->reason.find("endpoint"), std::string::npos) << stats->reason;
}

TEST_P(RelayTest, CloseEndsARelayThatIsIdle) {
  auto [client_test, client_relay] = unix_pair();
  auto [endpoint_test, endpoint_relay] = unix_pair();
  asio::io_context io;
  auto relay = Relay::create(io.get_executor(), std::move(client_relay), std::move(endpoint_relay),
                             GetParam());
  std::optional<RelayStats> stats;
  asio::co_spawn(io, relay->run(), [&](std::exception_ptr, RelayStats s) { stats = s; });
  asio::steady_timer t(io, 100ms);
  t.async_wait([&](auto) { relay->close("shutdown"); });
  auto start = Clock::now();
  io.run_for(5s);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->reason, "shutdown");
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_TRUE(read_to_eof(client_test.get(), 2s).empty());
}

INSTANTIATE_TEST_SUITE_P(Modes, RelayTest, ::testing::Values(RelayMode::kSplice, RelayMode::kCopy),
                         [](const auto& info) {
                           return info.param == RelayMode::kSplice ? "Splice" : "Copy";
                         });

// ---------------------------------------------------------------- HTTPS broker client

class BrokerClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(broker_.ok()); }

  BrokerConfig config(std::string ca = {}) const {
    BrokerConfig c;
    c.host = "127.0.0.1";
    c.port = broker_.port();
    c.ca_file = ca.empty() ? broker_.cert_file() : ca;
    c.secret_file = broker_.secret_file();
    c.timeout = 3000ms;
    c.logon_timeout = 3000ms;
    return c;
  }

  std::unique_ptr<HttpsBrokerClient> client(const BrokerConfig& c) {
    auto made = HttpsBrokerClient::create(io_.get_executor(), c);
    EXPECT_TRUE(made) << made.error().message;
    return made ? std::move(*made) : nullptr;
  }

  template <class T>
  T run(asio::awaitable<T> a) {
    std::optional<T> out;
    asio::co_spawn(io_, std::move(a), [&](std::exception_ptr e, T v) {
      if (e) std::rethrow_exception(e);
      out = std::move(v);
    });
    io_.restart();
    io_.run();
    return std::move(*out);
  }

  TempDir dir_;
  FakeBroker broker_{dir_.path()};
  asio::io_context io_;
};

TEST_F(BrokerClientTest, RedeemsATokenOnceWithThePinnedCertificateAndTheSecret) {
  FakeSession s{"s-42", "alice", "0123456789abcdef-secret", "/run/x.sock", "127.0.0.1:5000"};
  broker_.add_token("tok-a", s);
  auto c = client(config());
  ASSERT_TRUE(c);
  auto r = run(c->redeem("tok-a"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->session_id, "s-42");
  EXPECT_EQ(r->user, "alice");
  EXPECT_EQ(r->secret, s.secret);
  EXPECT_EQ(r->endpoint.unix_path, "/run/x.sock");
  EXPECT_EQ(r->endpoint.tcp, "127.0.0.1:5000");
  auto again = run(c->redeem("tok-a"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().status, 404u);
  EXPECT_EQ(broker_.unauthorized(), 0u);
  ASSERT_EQ(broker_.redeems().size(), 2u);
  EXPECT_TRUE(broker_.redeems()[0].ok);
  EXPECT_FALSE(broker_.redeems()[1].ok);
}

TEST_F(BrokerClientTest, AnotherCertificateIsNotTrusted) {
  std::string other_crt = dir_.path() + "/other.crt", other_key = dir_.path() + "/other.key";
  ASSERT_TRUE(ensure_self_signed_cert(other_crt, other_key, "127.0.0.1", 1));
  broker_.add_token("tok-b", FakeSession{"s", "u", "0123456789abcdef", "/x", ""});
  auto c = client(config(other_crt));
  ASSERT_TRUE(c);
  auto r = run(c->redeem("tok-b"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 0u);
  EXPECT_NE(r.error().message.find("TLS handshake"), std::string::npos) << r.error().message;
  EXPECT_TRUE(broker_.redeems().empty());  // the token never left the gateway
}

TEST_F(BrokerClientTest, WrongSecretIsRefused) {
  std::string wrong = dir_.path() + "/wrong.secret";
  std::ofstream(wrong) << "not-the-secret\n";
  BrokerConfig c = config();
  c.secret_file = wrong;
  auto cl = client(c);
  ASSERT_TRUE(cl);
  auto r = run(cl->redeem("x"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 401u);
  EXPECT_EQ(broker_.unauthorized(), 1u);
}

TEST_F(BrokerClientTest, LogonOutcomes) {
  broker_.add_user("bob", "pw", FakeSession{"s-7", "bob", "0123456789abcdef", "/x", ""});
  auto c = client(config());
  ASSERT_TRUE(c);
  auto ok = run(c->logon(LogonRequest{"bob", "pw", std::string("calc"), "10.0.0.1"}));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->session_id, "s-7");
  ASSERT_EQ(broker_.issued_tokens().size(), 1u);
  EXPECT_EQ(ok->token, broker_.issued_tokens()[0]);
  auto bad = run(c->logon(LogonRequest{"bob", "wrong", std::nullopt, "10.0.0.1"}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 401u);
  broker_.set_logon_status(429);
  auto locked = run(c->logon(LogonRequest{"bob", "pw", std::nullopt, "10.0.0.1"}));
  ASSERT_FALSE(locked);
  EXPECT_EQ(locked.error().status, 429u);
  ASSERT_TRUE(locked.error().retry_after);
  EXPECT_EQ(*locked.error().retry_after, 30s);
  auto logons = broker_.logons();
  ASSERT_EQ(logons.size(), 3u);
  EXPECT_EQ(logons[0].app, "calc");
  EXPECT_EQ(logons[0].client_address, "10.0.0.1");
}

TEST_F(BrokerClientTest, SlowBrokerTimesOut) {
  broker_.set_delay(3000ms);
  BrokerConfig c = config();
  c.timeout = 500ms;
  auto cl = client(c);
  ASSERT_TRUE(cl);
  auto start = Clock::now();
  auto r = run(cl->redeem("x"));
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error().status, 0u);
  EXPECT_LT(Clock::now() - start, 2000ms);
}

TEST(BrokerReplies, MalformedRepliesAreErrors) {
  using Reply = HttpsBrokerClient::Reply;
  EXPECT_FALSE(parse_redemption(Reply{200, "not json", {}}));
  EXPECT_FALSE(parse_redemption(Reply{200, R"({"session_id":"s","user":"u","endpoint":{}})", {}}));
  EXPECT_FALSE(parse_redemption(
      Reply{200, R"({"session_id":"s","user":"u","secret":"a b","endpoint":{"unix":"/x"}})", {}}));
  EXPECT_FALSE(parse_redemption(
      Reply{200, R"({"session_id":"s","user":"u","secret":"abc","endpoint":{"unix":null,"tcp":null}})", {}}));
  EXPECT_TRUE(parse_redemption(
      Reply{200, R"({"session_id":"s","user":"u","secret":"abc","endpoint":{"unix":"/x","tcp":null}})", {}}));
  EXPECT_FALSE(parse_logon_reply(Reply{200, R"({"token":"has\r\nCRLF"})", {}}));
  auto refused = parse_logon_reply(Reply{403, R"({"error":"no entitled apps"})", {}});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 403u);
  EXPECT_NE(refused.error().message.find("no entitled apps"), std::string::npos);
}

TEST(LogonRefusal, CodesForBrokerAnswers) {
  EXPECT_EQ(refusal_for(BrokerError{401, "", {}}).logon_error_type, uint32_t{LOGON_FAILED_BAD_PASSWORD});
  EXPECT_EQ(refusal_for(BrokerError{401, "", {}}).error_info, uint32_t{ERRINFO_SERVER_DENIED_CONNECTION});
  EXPECT_EQ(refusal_for(BrokerError{403, "", {}}).error_info,
            uint32_t{ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES});
  EXPECT_EQ(refusal_for(BrokerError{429, "", {}}).logon_error_type, uint32_t{LOGON_FAILED_OTHER});
  EXPECT_EQ(refusal_for(BrokerError{0, "", {}}).error_info, uint32_t{ERRINFO_CB_DESTINATION_NOT_FOUND});
}

// ---------------------------------------------------------------- GatewayServer in-process

// A BrokerClient in memory: the core does not care how the broker is reached.
class MemoryBroker : public BrokerClient {
 public:
  std::map<std::string, Redemption> tokens;
  int redeem_calls = 0;
  asio::awaitable<BrokerResult<Redemption>> redeem(std::string token) override {
    ++redeem_calls;
    auto it = tokens.find(token);
    if (it == tokens.end()) co_return tl::unexpected(BrokerError{404, "unknown", {}});
    Redemption r = it->second;
    tokens.erase(it);
    co_return r;
  }
  asio::awaitable<BrokerResult<LogonReply>> logon(LogonRequest) override {
    co_return tl::unexpected(BrokerError{401, "no", {}});
  }
};

class ServerTest : public ::testing::Test {
 protected:
  void start(LogonHandoff* logon = nullptr) {
    GatewayConfig c;
    c.listen.address = "127.0.0.1";
    c.listen.port = 0;
    c.limits.first_pdu_timeout = 1000ms;
    c.logon.enabled = logon != nullptr;
    server_ = std::make_unique<GatewayServer>(io_, c, broker_, logon);
    auto port = server_->listen();
    ASSERT_TRUE(port);
    port_ = *port;
    server_->start();
    loop_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (server_) asio::post(io_, [this] { server_->stop(); });
    if (loop_.joinable()) loop_.join();
  }
  UniqueFd connect_gateway() {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }

  TempDir dir_;
  MemoryBroker broker_;
  asio::io_context io_;
  std::unique_ptr<GatewayServer> server_;
  std::thread loop_;
  uint16_t port_ = 0;
};

TEST_F(ServerTest, TokenRouteRewritesTheCookieAndRelays) {
  const std::string sock = dir_.path() + "/ep.sock";
  const auto down = pattern_bytes(100'000, 3), up = pattern_bytes(200'000, 4);
  FakeEndpoint endpoint(sock, down);
  broker_.tokens["tok-1"] = Redemption{"s-1", "alice", {sock, ""}, "secret-0123456789"};
  start();
  UniqueFd c = connect_gateway();
  auto pdu = connection_request("Cookie: msts=tok-1");
  write_all(c.get(), pdu);
  std::vector<uint8_t> got;
  std::thread reader([&] { got = read_to_eof(c.get(), 10s); });
  write_all(c.get(), up);
  ::shutdown(c.get(), SHUT_WR);
  reader.join();
  ASSERT_TRUE(endpoint.wait_done(0, 10s));
  auto seen = endpoint.seen(0);
  auto parsed = x224::parse_connection_request(seen.first_pdu);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->cookie, "Cookie: msts=secret-0123456789");
  EXPECT_TRUE(seen.received == up);
  EXPECT_TRUE(got == down);
}

TEST_F(ServerTest, NoLogonFrontMeansMstshashIsClosed) {
  start();
  UniqueFd c = connect_gateway();
  write_all(c.get(), connection_request("Cookie: mstshash=bob"));
  auto start = Clock::now();
  EXPECT_TRUE(read_to_eof(c.get(), 3s).empty());
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_EQ(broker_.redeem_calls, 0);
}

// The logon seam gets the untouched socket: the Connection Request is still unread.
class RecordingLogon : public LogonHandoff {
 public:
  bool hand_off(UniqueFd& fd, const ClientInfo& client, std::function<void()> done) override {
    address = client.address;
    uint8_t buf[512];
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 1000) == 1) {
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) first_bytes.assign(buf, buf + n);
    }
    blocking = (::fcntl(fd.get(), F_GETFL) & O_NONBLOCK) == 0;
    fd.reset();
    done();
    return true;
  }
  std::string address;
  std::vector<uint8_t> first_bytes;
  bool blocking = false;
};

TEST_F(ServerTest, LogonFrontGetsTheUntouchedBlockingSocket) {
  RecordingLogon logon;
  start(&logon);
  UniqueFd c = connect_gateway();
  auto pdu = connection_request("Cookie: mstshash=bob");
  write_all(c.get(), pdu);
  EXPECT_TRUE(read_to_eof(c.get(), 3s).empty());  // the recorder closed it
  EXPECT_EQ(logon.address, "127.0.0.1");
  EXPECT_TRUE(logon.first_bytes == pdu);
  EXPECT_TRUE(logon.blocking);
}

TEST_F(ServerTest, PreRoutingLimitHoldsNewClientsInTheBacklog) {
  const std::string sock = dir_.path() + "/ep2.sock";
  FakeEndpoint endpoint(sock, {});
  broker_.tokens["tok-2"] = Redemption{"s-2", "bob", {sock, ""}, "secret-0123456789"};
  // Two slots only, both taken by silent clients.
  GatewayConfig c;
  c.listen.address = "127.0.0.1";
  c.listen.port = 0;
  c.limits.max_pre_routing = 2;
  c.limits.first_pdu_timeout = 1500ms;
  c.logon.enabled = false;
  server_ = std::make_unique<GatewayServer>(io_, c, broker_, nullptr);
  port_ = *server_->listen();
  server_->start();
  loop_ = std::thread([this] { io_.run(); });
  UniqueFd silent1 = connect_gateway(), silent2 = connect_gateway();
  std::this_thread::sleep_for(200ms);
  auto start = Clock::now();
  UniqueFd good = connect_gateway();  // completes in the kernel backlog
  write_all(good.get(), connection_request("Cookie: msts=tok-2"));
  while (endpoint.accepted() == 0 && Clock::now() - start < 10s) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(endpoint.accepted(), 1u);
  auto waited = Clock::now() - start;
  // Served only once a silent client timed out and freed its slot.
  EXPECT_GT(waited, 1000ms);
  EXPECT_LT(waited, 4000ms);
}

}  // namespace
