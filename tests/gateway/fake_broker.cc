#include "tests/gateway/fake_broker.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/ssl.hpp>
#include <cstring>
#include <fstream>
#include <random>

#include "common/http_server.h"
#include "common/tls_cert.h"

namespace appvirt::testing {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using http::Request;
using http::Response;

std::vector<uint8_t> pattern_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(gen());
  return out;
}

struct FakeBroker::Impl {
  asio::io_context io{1};
  ssl::context tls{ssl::context::tls_server};
  tcp::acceptor acceptor{io};
  std::shared_ptr<http::HttpServer::State> state;
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  std::map<std::string, FakeSession> tokens;
  std::map<std::string, std::pair<std::string, FakeSession>> users;
  std::vector<Redeem> redeems;
  std::vector<Logon> logons;
  std::vector<std::string> issued;
  size_t unauthorized = 0;
  uint64_t next_token = 1;
};

namespace {

// As the real broker: the secret in `Authorization: Bearer`. The gateway once sent it in a
// second, unchecked header too; a request that still does is refused, so the secret travels once.
bool authorized(const Request& req, const std::string& secret) {
  return req[bhttp::field::authorization] == "Bearer " + secret &&
         req.find("X-Appvirt-Internal-Secret") == req.end();
}

nlohmann::json session_json(const FakeSession& s) {
  nlohmann::json endpoint = {{"unix", s.unix_path}, {"tcp", nullptr}};
  if (!s.tcp.empty()) endpoint["tcp"] = s.tcp;
  return {{"session_id", s.session_id}, {"user", s.user}, {"app_id", "app"},
          {"endpoint", endpoint}, {"secret", s.secret}};
}

asio::awaitable<void> accept_loop(FakeBroker::Impl* impl) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await impl->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    asio::co_spawn(
        impl->io,
        [impl, s = std::move(socket)]() mutable -> asio::awaitable<void> {
          ssl::stream<tcp::socket> stream(std::move(s), impl->tls);
          boost::system::error_code hec;
          co_await stream.async_handshake(ssl::stream_base::server,
                                          asio::redirect_error(asio::use_awaitable, hec));
          if (hec) co_return;
          co_await http::HttpServer::serve(impl->state, std::move(stream));
        },
        asio::detached);
  }
}

}  // namespace

FakeBroker::FakeBroker(const std::string& dir) : impl_(std::make_unique<Impl>()) {
  cert_file_ = dir + "/broker.crt";
  key_file_ = dir + "/broker.key";
  secret_file_ = dir + "/gateway.secret";
  secret_ = "gw-secret-" + std::to_string(::getpid());
  std::ofstream(secret_file_) << secret_ << "\n";
  if (!ensure_self_signed_cert(cert_file_, key_file_, "127.0.0.1", 2)) return;
  impl_->tls.use_certificate_chain_file(cert_file_);
  impl_->tls.use_private_key_file(key_file_, ssl::context::pem);
  http::Router router;
  Impl* impl = impl_.get();
  router.add(bhttp::verb::post, "/internal/v1/tokens/redeem",
             [this, impl](const Request& req, const http::PathParams&) -> asio::awaitable<Response> {
               if (int64_t d = delay_ms_.load()) {
                 asio::steady_timer t(impl->io, std::chrono::milliseconds(d));
                 co_await t.async_wait(asio::use_awaitable);
               }
               std::unique_lock lock(impl->mu);
               if (!authorized(req, secret_)) {
                 ++impl->unauthorized;
                 co_return http::error_response(bhttp::status::unauthorized, "bad secret");
               }
               auto body = nlohmann::json::parse(req.body(), nullptr, false);
               std::string token = body.is_object() && body["token"].is_string()
                                       ? body["token"].get<std::string>() : "";
               auto it = impl->tokens.find(token);
               bool ok = it != impl->tokens.end();
               impl->redeems.push_back({token, ok});
               impl->cv.notify_all();
               if (!ok) co_return http::error_response(bhttp::status::not_found, "invalid or expired token");
               nlohmann::json reply = session_json(it->second);
               impl->tokens.erase(it);  // single use
               co_return http::json_response(bhttp::status::ok, reply);
             });
  router.add(bhttp::verb::post, "/internal/v1/logon",
             [this, impl](const Request& req, const http::PathParams&) -> asio::awaitable<Response> {
               std::unique_lock lock(impl->mu);
               if (!authorized(req, secret_)) {
                 ++impl->unauthorized;
                 co_return http::error_response(bhttp::status::unauthorized, "bad secret");
               }
               auto body = nlohmann::json::parse(req.body(), nullptr, false);
               auto str = [&](const char* k) {
                 return body.is_object() && body.contains(k) && body[k].is_string()
                            ? body[k].get<std::string>() : std::string();
               };
               Logon attempt{str("username"), str("app"), str("client_address"), false};
               auto user = impl->users.find(attempt.username);
               bool ok = user != impl->users.end() && user->second.first == str("password");
               if (unsigned forced = logon_status_.load()) {
                 impl->logons.push_back(attempt);
                 Response res = http::error_response(static_cast<bhttp::status>(forced), "forced");
                 if (forced == 429) res.set(bhttp::field::retry_after, "30");
                 co_return res;
               }
               attempt.ok = ok;
               impl->logons.push_back(attempt);
               if (!ok) co_return http::error_response(bhttp::status::unauthorized, "invalid user name or password");
               std::string token = "tok-" + std::to_string(impl->next_token++) + "-" +
                                   std::to_string(::getpid()) + "-logon";
               impl->tokens[token] = user->second.second;
               impl->issued.push_back(token);
               co_return http::json_response(bhttp::status::ok,
                                             {{"token", token},
                                              {"routing_token", "Cookie: msts=" + token},
                                              {"session_id", user->second.second.session_id},
                                              {"user", attempt.username}});
             });
  impl_->state = std::make_shared<http::HttpServer::State>(
      http::HttpServer::State{std::move(router), http::ServerLimits{}, 0});
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, accept_loop(impl_.get()), asio::detached);
  thread_ = std::thread([impl] { impl->io.run(); });
}

FakeBroker::~FakeBroker() {
  impl_->io.stop();
  if (thread_.joinable()) thread_.join();
}

void FakeBroker::add_token(const std::string& token, FakeSession session) {
  std::lock_guard lock(impl_->mu);
  impl_->tokens[token] = std::move(session);
}

void FakeBroker::add_user(const std::string& user, const std::string& password,
                          FakeSession session) {
  std::lock_guard lock(impl_->mu);
  impl_->users[user] = {password, std::move(session)};
}

std::vector<FakeBroker::Redeem> FakeBroker::redeems() const {
  std::lock_guard lock(impl_->mu);
  return impl_->redeems;
}

std::vector<FakeBroker::Logon> FakeBroker::logons() const {
  std::lock_guard lock(impl_->mu);
  return impl_->logons;
}

std::vector<std::string> FakeBroker::issued_tokens() const {
  std::lock_guard lock(impl_->mu);
  return impl_->issued;
}

size_t FakeBroker::unauthorized() const {
  std::lock_guard lock(impl_->mu);
  return impl_->unauthorized;
}

bool FakeBroker::wait_redeems(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->redeems.size() >= n; });
}

// ---- FakeEndpoint ----

namespace {

// Reads exactly n bytes, waiting at most timeout_ms for each chunk.
bool read_exact(int fd, uint8_t* out, size_t n, int timeout_ms) {
  size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return false;
    ssize_t r = ::recv(fd, out + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

FakeEndpoint::FakeEndpoint(const std::string& path, std::vector<uint8_t> blob, int connections)
    : blob_(std::move(blob)), connections_(connections) {
  ::unlink(path.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  thread_ = std::thread([this] { serve(); });
}

FakeEndpoint::~FakeEndpoint() {
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  ::close(stop_fd_);
}

void FakeEndpoint::serve() {
  for (int i = 0; i < connections_ && listen_fd_ >= 0; ++i) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, 60'000) <= 0 || p[1].revents) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    ++accepted_;
    Seen seen;
    uint8_t header[4];
    if (read_exact(fd, header, 4, 10'000)) {
      size_t length = (size_t(header[2]) << 8) | header[3];
      seen.first_pdu.assign(header, header + 4);
      seen.first_pdu.resize(std::max<size_t>(length, 4));
      if (length > 4 && read_exact(fd, seen.first_pdu.data() + 4, length - 4, 10'000)) {
        {
          std::lock_guard lock(mu_);
          first_pdus_.push_back(seen.first_pdu);
          cv_.notify_all();
        }
        size_t sent = 0;
        while (sent < blob_.size()) {
          ssize_t w = ::send(fd, blob_.data() + sent, blob_.size() - sent, MSG_NOSIGNAL);
          if (w <= 0) break;
          sent += static_cast<size_t>(w);
        }
        uint8_t buf[65536];
        for (;;) {
          pollfd q[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
          if (::poll(q, 2, 30'000) <= 0 || q[1].revents) break;
          ssize_t r = ::recv(fd, buf, sizeof buf, 0);
          if (r <= 0) break;
          seen.received.insert(seen.received.end(), buf, buf + r);
        }
      }
    }
    ::close(fd);
    std::lock_guard lock(mu_);
    seen_.push_back(std::move(seen));
    cv_.notify_all();
  }
}

bool FakeEndpoint::wait_done(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return seen_.size() > n; });
}

std::optional<std::vector<uint8_t>> FakeEndpoint::wait_first_pdu(size_t n,
                                                                 std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return first_pdus_.size() > n; })) return std::nullopt;
  return first_pdus_[n];
}

FakeEndpoint::Seen FakeEndpoint::seen(size_t n) {
  std::lock_guard lock(mu_);
  return n < seen_.size() ? seen_[n] : Seen{};
}

}  // namespace appvirt::testing
