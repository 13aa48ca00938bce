#include "tests/broker/e2e_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <algorithm>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/unique_fd.h"
#include "common/x224.h"

namespace appvirt::broker::e2e {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

ssl::context client_context(int max_version) {
  ssl::context ctx(ssl::context::tls_client);
  // The broker's self-signed certificate is not what these tests check (its TLS settings are).
  ctx.set_verify_mode(ssl::verify_none);
  if (max_version) {
    // Let the client offer old versions at all (OpenSSL 3 refuses them at the default security
    // level), so a failed handshake is the server's refusal.
    SSL_CTX_set_security_level(ctx.native_handle(), 0);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx.native_handle(), max_version);
  }
  return ctx;
}

}  // namespace

Result<Reply> https(uint16_t port, const std::string& method, const std::string& target,
                    const std::string& body, const Options& opts) {
  asio::io_context io;
  ssl::context ctx = client_context(opts.max_tls_version);
  ssl::stream<tcp::socket> stream(io, ctx);
  std::optional<Result<Reply>> out;
  auto run = [&]() -> asio::awaitable<void> {
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    co_await stream.next_layer().async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) { out = fail("connect: " + ec.message()); co_return; }
    co_await stream.async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) { out = fail("handshake: " + ec.message()); co_return; }
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
    req.set(bhttp::field::host, "localhost");
    for (const auto& [k, v] : opts.headers) req.set(k, v);
    if (!body.empty() && !opts.headers.count("Content-Type")) req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    co_await bhttp::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    beast::flat_buffer buf;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(16 << 20);
    boost::system::error_code rec;
    co_await bhttp::async_read(stream, buf, parser, asio::redirect_error(asio::use_awaitable, rec));
    if (rec) { out = fail("read: " + rec.message() + (ec ? " (write: " + ec.message() + ")" : "")); co_return; }
    auto res = parser.release();
    Reply r;
    r.status = res.result_int();
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(f.value());
    }
    r.body = res.body();
    out = std::move(r);
  };
  asio::co_spawn(io, run(), asio::detached);
  io.run_for(opts.timeout);
  if (!out) return fail(method + " " + target + ": timed out");
  return std::move(*out);
}

Result<RawResult> raw_tls(uint16_t port, const std::string& raw, milliseconds timeout) {
  asio::io_context io;
  ssl::context ctx = client_context(0);
  ssl::stream<tcp::socket> stream(io, ctx);
  std::optional<Result<RawResult>> out;
  RawResult rr;
  auto start = std::chrono::steady_clock::now();
  auto run = [&]() -> asio::awaitable<void> {
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    co_await stream.next_layer().async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) { out = fail("connect: " + ec.message()); co_return; }
    co_await stream.async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) { out = fail("handshake: " + ec.message()); co_return; }
    start = std::chrono::steady_clock::now();
    co_await asio::async_write(stream, asio::buffer(raw), asio::redirect_error(asio::use_awaitable, ec));
    char buf[4096];
    for (;;) {
      std::size_t n = co_await stream.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
      rr.received.append(buf, n);
      if (ec) break;
    }
    rr.closed = true;
    rr.closed_after = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    out = rr;
  };
  asio::co_spawn(io, run(), asio::detached);
  io.run_for(timeout);
  if (!out) {
    rr.closed = false;
    return rr;
  }
  return std::move(*out);
}

Result<RawResult> silent_tcp(uint16_t port, milliseconds timeout) {
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return fail("connect: " + ec.message());
  RawResult rr;
  auto start = std::chrono::steady_clock::now();
  char buf[256];
  socket.async_read_some(asio::buffer(buf), [&](const boost::system::error_code&, std::size_t) {
    rr.closed = true;
    rr.closed_after = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  });
  io.run_for(timeout);
  return rr;
}

TempPamService::TempPamService(const std::string& source) {
  name_ = "appvirt-e2e-" + random_suffix();
  std::error_code ec;
  std::filesystem::copy_file(source, "/etc/pam.d/" + name_, ec);
  ok_ = !ec;
}

TempPamService::~TempPamService() { std::filesystem::remove("/etc/pam.d/" + name_); }

Result<WebSession> login(uint16_t port, const std::string& user, const std::string& password) {
  auto r = https(port, "POST", "/api/v1/login",
                 nlohmann::json{{"username", user}, {"password", password}}.dump());
  if (!r) return tl::unexpected(r.error());
  if (r->status != 200) return fail("login: " + std::to_string(r->status) + " " + r->body);
  const std::string set = r->header("set-cookie");
  const std::string prefix = "__Host-appvirt_session=";
  if (set.rfind(prefix, 0) != 0) return fail("login: no session cookie in " + set);
  WebSession web;
  web.cookie = set.substr(prefix.size(), set.find(';') - prefix.size());
  web.csrf = nlohmann::json::parse(r->body, nullptr, false).value("csrf_token", "");
  return web;
}

Options as(const WebSession& web, bool csrf) {
  Options o;
  o.headers["Cookie"] = "__Host-appvirt_session=" + web.cookie;
  if (csrf) o.headers["X-CSRF-Token"] = web.csrf;
  return o;
}

std::string token_of_rdp_file(const std::string& rdp) {
  const std::string key = "loadbalanceinfo:s:Cookie: msts=";
  auto pos = rdp.find(key);
  if (pos == std::string::npos) return {};
  auto end = rdp.find("\r\n", pos);
  return rdp.substr(pos + key.size(), end == std::string::npos ? end : end - pos - key.size());
}

Result<BrokerProcess> start_broker(const std::string& binary, const std::string& config,
                                   const std::string& port_file, const std::string& log_file,
                                   int hosts_up, milliseconds timeout) {
  std::filesystem::remove(port_file);
  testing::SpawnOptions o;
  o.stderr_file = log_file;
  auto c = testing::Child::spawn({binary, "--config", config, "--port-file", port_file}, o);
  if (!c) return tl::unexpected(c.error());
  BrokerProcess b{std::move(*c), 0};
  if (!testing::eventually([&] { return !testing::read_text_file(port_file).empty(); }, timeout)) {
    return fail("broker did not write its port: " + testing::read_text_file(log_file));
  }
  b.port = static_cast<uint16_t>(std::stoi(testing::read_text_file(port_file)));
  // The broker probes its configured hosts right away; wait until it counts them as up.
  bool up = testing::eventually([&] {
    auto r = https(b.port, "GET", "/healthz");
    if (!r || r->status != 200) return false;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_object() && j.value("hosts_up", -1) == hosts_up;
  }, timeout);
  if (!up) return fail("broker never counted " + std::to_string(hosts_up) + " host(s) up: " +
                       testing::read_text_file(log_file));
  return b;
}

X224Catcher::~X224Catcher() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> X224Catcher::listen(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return fail_errno("socket");
  int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return fail_errno("bind");
  if (::listen(fd_, 4) != 0) return fail_errno("listen");
  return {};
}

Result<std::string> X224Catcher::cookie(milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    auto ms = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(0, ms.count()));
  };
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, left()) != 1) return fail("no client connected");
  UniqueFd conn(::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn) return fail_errno("accept");
  std::vector<uint8_t> pdu;
  for (;;) {
    auto need = x224::needed_bytes(pdu);
    if (!need) return tl::unexpected(need.error());
    if (pdu.size() >= *need) break;
    pollfd q{conn.get(), POLLIN, 0};
    if (::poll(&q, 1, left()) != 1) return fail("client sent no complete PDU");
    uint8_t buf[512];
    ssize_t n = ::read(conn.get(), buf, std::min<size_t>(sizeof(buf), *need - pdu.size()));
    if (n <= 0) return fail("client closed before a complete PDU");
    pdu.insert(pdu.end(), buf, buf + n);
  }
  auto cr = x224::parse_connection_request(pdu);
  if (!cr) return tl::unexpected(cr.error());
  return cr->cookie.value_or("");
}

}  // namespace appvirt::broker::e2e
