// HTTP server/client helpers over a real Unix socket in a temp directory: routing, limits and
// timeouts as a client sees them on the wire.
#include "common/http_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "common/http_client.h"
#include "common/unique_fd.h"

namespace appvirt::http {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

Router test_router() {
  Router r;
  r.add(bhttp::verb::get, "/v1/items/{id}",
        [](const Request&, const PathParams& p) -> asio::awaitable<Response> {
          co_return json_response(bhttp::status::ok, {{"id", p.at("id")}});
        });
  r.add(bhttp::verb::delete_, "/v1/items/{id}",
        [](const Request&, const PathParams&) -> asio::awaitable<Response> {
          co_return json_response(bhttp::status::ok, {{"deleted", true}});
        });
  r.add(bhttp::verb::post, "/v1/items",
        [](const Request& req, const PathParams&) -> asio::awaitable<Response> {
          auto body = parse_json_object(req.body());
          if (!body) co_return error_response(bhttp::status::bad_request, body.error().message);
          co_return json_response(bhttp::status::created, *body);
        });
  r.add(bhttp::verb::get, "/v1/throw",
        [](const Request&, const PathParams&) -> asio::awaitable<Response> {
          nlohmann::json j = 5;
          co_return json_response(bhttp::status::ok, {{"x", j.at("missing")}});
        });
  return r;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("http-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "s.sock").string();
    ServerLimits limits;
    limits.max_body_bytes = 1024;
    limits.header_timeout = 300ms;
    limits.body_timeout = 300ms;
    limits.max_connections = 3;
    // Marks every response it writes: the tests below check that the server's own answers
    // (408, 413, 400, 503, 404) go through it as well as the handlers'.
    server_ = std::make_unique<HttpServer>(test_router(), limits,
                                           [](Response& res) { res.set("X-Decorated", "yes"); });
    acceptor_.emplace(io_, asio::local::stream_protocol::endpoint(path_));
    server_->start(*acceptor_);
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    asio::post(io_, [this] { acceptor_->close(); });
    io_.stop();
    thread_.join();
    fs::remove_all(dir_);
  }

  // A raw client: the tests need to send malformed and partial requests.
  UniqueFd connect_raw() {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{3, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
  }
  static void send_all(int fd, std::string_view data) {
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  }
  // Reads until the server closes (or 3 s pass) and returns everything received.
  static std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // A raw reply with the given status, the decorator's mark and a JSON {"error": "..."} body.
  static void expect_decorated_error(const std::string& reply, const std::string& status) {
    EXPECT_EQ(reply.rfind("HTTP/1.1 " + status, 0), 0u) << reply;
    std::size_t end = reply.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos) << reply;
    EXPECT_NE(reply.substr(0, end).find("\r\nX-Decorated: yes"), std::string::npos) << reply;
    auto body = nlohmann::json::parse(reply.substr(end + 4), nullptr, false);
    ASSERT_TRUE(body.is_object()) << reply;
    EXPECT_TRUE(body["error"].is_string()) << reply;
  }
  Result<ClientResponse> request(bhttp::verb m, std::string_view target, std::string body = {}) {
    return unix_request(path_, m, target, std::move(body), 3000ms);
  }

  fs::path dir_;
  std::string path_;
  asio::io_context io_;
  std::optional<asio::local::stream_protocol::acceptor> acceptor_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST(RouterTest, MatchesParamsAndReportsMethodNotAllowed) {
  Router r = test_router();
  auto m = r.match(bhttp::verb::get, "/v1/items/abc?x=1");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("id"), "abc");
  auto nf = r.match(bhttp::verb::get, "/v1/items/abc/more");
  EXPECT_EQ(nf.handler, nullptr);
  EXPECT_EQ(nf.status, bhttp::status::not_found);
  auto na = r.match(bhttp::verb::put, "/v1/items/abc");
  EXPECT_EQ(na.handler, nullptr);
  EXPECT_EQ(na.status, bhttp::status::method_not_allowed);
  EXPECT_EQ(na.allow, "GET, DELETE");
}

TEST_F(HttpServerTest, RoutesWithPathParameters) {
  auto r = request(bhttp::verb::get, "/v1/items/x42");
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(nlohmann::json::parse(r->body)["id"], "x42");
}

TEST_F(HttpServerTest, PostsJsonAndRejectsMalformedJsonWith400) {
  auto ok = request(bhttp::verb::post, "/v1/items", R"({"a":1})");
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(ok->status, 201u);
  auto bad = request(bhttp::verb::post, "/v1/items", R"({"a":)");
  ASSERT_TRUE(bad) << bad.error().str();
  EXPECT_EQ(bad->status, 400u);
  EXPECT_NE(nlohmann::json::parse(bad->body)["error"].get<std::string>().find("malformed JSON"),
            std::string::npos);
  auto not_object = request(bhttp::verb::post, "/v1/items", "[1,2]");
  ASSERT_TRUE(not_object);
  EXPECT_EQ(not_object->status, 400u);
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405) {
  auto nf = request(bhttp::verb::get, "/v1/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404u);
  auto na = request(bhttp::verb::put, "/v1/items/1");
  ASSERT_TRUE(na);
  EXPECT_EQ(na->status, 405u);
}

TEST_F(HttpServerTest, ThrowingHandlerIs500AndServerKeepsServing) {
  auto r = request(bhttp::verb::get, "/v1/throw");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500u);
  auto again = request(bhttp::verb::get, "/v1/items/1");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200u);
}

TEST_F(HttpServerTest, OversizedContentLengthIs413WithoutReadingTheBody) {
  UniqueFd fd = connect_raw();
  send_all(fd.get(), "POST /v1/items HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
  std::string reply = read_all(fd.get());
  expect_decorated_error(reply, "413");
}

TEST_F(HttpServerTest, OversizedChunkedBodyIs413) {
  UniqueFd fd = connect_raw();
  std::string chunk(2000, 'x');
  send_all(fd.get(), "POST /v1/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  send_all(fd.get(), "7d0\r\n" + chunk + "\r\n0\r\n\r\n");
  std::string reply = read_all(fd.get());
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
}

TEST_F(HttpServerTest, GarbageRequestLineIs400) {
  UniqueFd fd = connect_raw();
  send_all(fd.get(), "NOT HTTP AT ALL\r\n\r\n");
  std::string reply = read_all(fd.get());
  expect_decorated_error(reply, "400");
}

TEST_F(HttpServerTest, IncompleteHeaderTimesOutWith408) {
  UniqueFd fd = connect_raw();
  auto start = std::chrono::steady_clock::now();
  send_all(fd.get(), "GET /v1/items/1 HTTP/1.1\r\nHost: x\r\n");
  std::string reply = read_all(fd.get());
  auto took = std::chrono::steady_clock::now() - start;
  expect_decorated_error(reply, "408");
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2500ms);
}

TEST_F(HttpServerTest, IncompleteBodyTimesOutWith408) {
  UniqueFd fd = connect_raw();
  send_all(fd.get(), "POST /v1/items HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"");
  std::string reply = read_all(fd.get());
  expect_decorated_error(reply, "408");
}

TEST_F(HttpServerTest, IdleConnectionIsClosedSilently) {
  UniqueFd fd = connect_raw();
  auto start = std::chrono::steady_clock::now();
  std::string reply = read_all(fd.get());
  EXPECT_EQ(reply, "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2500ms);
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  UniqueFd fd = connect_raw();
  send_all(fd.get(), "GET /v1/items/a HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /v1/items/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string reply = read_all(fd.get());
  EXPECT_NE(reply.find("\"a\""), std::string::npos) << reply;
  EXPECT_NE(reply.find("\"b\""), std::string::npos) << reply;
  // Routed answers are decorated too.
  std::size_t first = reply.find("\r\nX-Decorated: yes\r\n");
  ASSERT_NE(first, std::string::npos) << reply;
  EXPECT_NE(reply.find("\r\nX-Decorated: yes\r\n", first + 1), std::string::npos) << reply;
}

TEST_F(HttpServerTest, OversizedHeaderIs431AndDecorated) {
  UniqueFd fd = connect_raw();
  send_all(fd.get(), "GET /v1/items/1 HTTP/1.1\r\nHost: x\r\nX-Filler: " +
                         std::string(17 * 1024, 'f') + "\r\n\r\n");
  expect_decorated_error(read_all(fd.get()), "431");
}

TEST_F(HttpServerTest, NotFoundIsDecorated) {
  UniqueFd fd = connect_raw();
  send_all(fd.get(), "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  expect_decorated_error(read_all(fd.get()), "404");
}

TEST_F(HttpServerTest, ConnectionsBeyondTheCapGet503) {
  std::vector<UniqueFd> held;
  for (int i = 0; i < 3; ++i) held.push_back(connect_raw());
  // Let the server accept the three before the fourth arrives.
  for (int i = 0; i < 100 && server_->active_connections() < 3; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(server_->active_connections(), 3u);
  UniqueFd extra = connect_raw();
  std::string reply = read_all(extra.get());
  expect_decorated_error(reply, "503");
}

TEST_F(HttpServerTest, ClientReportsConnectFailure) {
  auto r = unix_request((dir_ / "missing.sock").string(), bhttp::verb::get, "/", "", 500ms);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("connect("), std::string::npos);
}

}  // namespace
}  // namespace appvirt::http
