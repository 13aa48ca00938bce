// UnixHostClient against an HTTP server on a Unix socket that speaks hostd's control API
// (docs/session-host.md): request bodies, reply parsing, error statuses, timeouts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "broker/host_client.h"
#include "common/http_server.h"
#include "tests/broker/fakes.h"

namespace appvirt::broker {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using http::PathParams;
using http::Request;
using http::Response;

class HostClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/broker-hc-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    host_.name = "h";
    host_.socket = dir_ + "/hostd.sock";
    http::Router r;
    r.add(bhttp::verb::post, "/v1/sessions", [this](const Request& req, const PathParams&) -> asio::awaitable<Response> {
      last_body_ = nlohmann::json::parse(req.body());
      co_return http::json_response(bhttp::status::created,
          {{"session_id", "abc"}, {"endpoint", {{"unix", "/run/s/abc/rdp.sock"}, {"tcp", nullptr}}},
           {"secret", "s3cr3t"}, {"display", ":201"}, {"state", "running"}});
    });
    r.add(bhttp::verb::get, "/v1/sessions", [](const Request&, const PathParams&) -> asio::awaitable<Response> {
      co_return http::json_response(bhttp::status::ok, {{"sessions", {{{"session_id", "abc"}, {"user", "alice"},
          {"app_id", "xterm"}, {"state", "ended"}, {"end_reason", "app-exited"}, {"display", ":201"},
          {"endpoint", {{"unix", "/x"}, {"tcp", "127.0.0.1:4000"}}}}}}});
    });
    r.add(bhttp::verb::get, "/v1/sessions/{id}", [this](const Request&, const PathParams& p) -> asio::awaitable<Response> {
      if (p.at("id") == "slow") {
        asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::seconds(5));
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      if (p.at("id") != "abc") co_return http::error_response(bhttp::status::not_found, "no such session");
      ++gets_;
      co_return http::json_response(bhttp::status::ok, {{"session_id", "abc"}, {"user", "alice"}, {"state", "running"}});
    });
    r.add(bhttp::verb::delete_, "/v1/sessions/{id}", [](const Request&, const PathParams& p) -> asio::awaitable<Response> {
      co_return http::json_response(bhttp::status::ok, {{"session_id", p.at("id")}, {"state", "ended"}, {"end_reason", "logoff"}});
    });
    r.add(bhttp::verb::get, "/v1/health", [](const Request&, const PathParams&) -> asio::awaitable<Response> {
      co_return http::json_response(bhttp::status::ok, {{"ok", true}, {"sessions", 3}, {"cgroup", "v1"}});
    });
    acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(
        io_, asio::local::stream_protocol::endpoint(host_.socket));
    server_ = std::make_unique<http::HttpServer>(std::move(r), http::ServerLimits{});
    server_->start(*acceptor_);
  }
  void TearDown() override {
    boost::system::error_code ec;
    acceptor_->close(ec);
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  HostRecord host_;
  asio::io_context io_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> acceptor_;
  std::unique_ptr<http::HttpServer> server_;
  nlohmann::json last_body_;
  int gets_ = 0;
  UnixHostClient client_{std::chrono::seconds(5), std::chrono::milliseconds(500)};
};

TEST_F(HostClientTest, LaunchSendsTheContractAndParsesTheReply) {
  HostLaunchRequest req{"alice", "xterm", {"/usr/bin/xterm", "-e", "top"}, {{"pids_max", 64}}, 1024, 768};
  req.idle_timeout_s = 900;
  req.disconnect_timeout_s = 3600;
  auto r = testing::run_coro(io_, client_.launch(host_, req));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->session_id, "abc");
  EXPECT_EQ(r->secret, "s3cr3t");
  EXPECT_EQ(r->endpoint_unix, "/run/s/abc/rdp.sock");
  EXPECT_EQ(r->endpoint_tcp, "");
  EXPECT_EQ(r->user, "alice") << "filled from the request when the reply has none";
  EXPECT_EQ(last_body_, (nlohmann::json{{"user", "alice"}, {"app_id", "xterm"},
                                        {"command", {"/usr/bin/xterm", "-e", "top"}},
                                        {"limits", {{"pids_max", 64}}}, {"width", 1024}, {"height", 768},
                                        {"idle_timeout_s", 900}, {"disconnect_timeout_s", 3600}}));
}

TEST_F(HostClientTest, ListGetLogoffHealth) {
  auto list = testing::run_coro(io_, client_.list(host_));
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].state, "ended");
  EXPECT_EQ((*list)[0].end_reason, "app-exited");
  EXPECT_EQ((*list)[0].endpoint_tcp, "127.0.0.1:4000");
  auto got = testing::run_coro(io_, client_.get(host_, "abc"));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state, "running");
  auto missing = testing::run_coro(io_, client_.get(host_, "nope"));
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().not_found());
  auto off = testing::run_coro(io_, client_.logoff(host_, "abc"));
  ASSERT_TRUE(off);
  EXPECT_EQ(off->end_reason, "logoff");
  auto health = testing::run_coro(io_, client_.health(host_));
  ASSERT_TRUE(health);
  EXPECT_EQ(health->sessions, 3);
}

TEST_F(HostClientTest, TimeoutAndUnreachableHostAreTransportErrors) {
  auto start = std::chrono::steady_clock::now();
  auto slow = testing::run_coro(io_, client_.get(host_, "slow"));
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().status, 0u);
  EXPECT_NE(slow.error().message.find("timed out"), std::string::npos) << slow.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  HostRecord gone = host_;
  gone.socket = dir_ + "/nothing.sock";
  auto down = testing::run_coro(io_, client_.health(gone));
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().status, 0u);
  EXPECT_NE(down.error().message.find("connect("), std::string::npos);
}

TEST(HostSessionJson, RejectsWhatIsNotASession) {
  EXPECT_FALSE(host_session_from_json(nlohmann::json::array()));
  EXPECT_FALSE(host_session_from_json({{"user", "x"}}));
  auto s = host_session_from_json({{"session_id", "a"}, {"state", 5}, {"endpoint", "bad"}});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state, "");
}

TEST(HostSessionJson, ARunningSessionWithoutClientsIsDisconnected) {
  nlohmann::json j = {{"session_id", "a"}, {"state", "running"}, {"clients", 0},
                      {"limits", {{"memory_max", 1024}}}, {"usage", {{"memory_bytes", 10}}}};
  auto s = host_session_from_json(j);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state, "disconnected");
  EXPECT_EQ(s->resources["limits"]["memory_max"], 1024);
  EXPECT_EQ(s->resources["usage"]["memory_bytes"], 10);
  j["clients"] = 1;
  EXPECT_EQ(host_session_from_json(j)->state, "running");
  j["clients"] = nullptr;  // hostd without an activity report: no verdict
  EXPECT_EQ(host_session_from_json(j)->state, "running");
  j["state"] = "starting";
  j["clients"] = 0;
  EXPECT_EQ(host_session_from_json(j)->state, "starting");
  EXPECT_TRUE(host_session_from_json({{"session_id", "b"}})->resources.is_null());
}

}  // namespace
}  // namespace appvirt::broker
