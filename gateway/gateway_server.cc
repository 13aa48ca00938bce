#include "gateway/gateway_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <boost/asio/redirect_error.hpp>
#include <cstring>

#include "common/log.h"
#include "gateway/first_pdu.h"

namespace appvirt::gateway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using stream_descriptor = asio::posix::stream_descriptor;

struct GatewayServer::Connection {
  Connection(tcp::socket s, ClientInfo c)
      : client(std::move(c)), socket(std::move(s)), deadline(socket.get_executor()) {}

  // Ends whatever the connection is doing; its coroutine then finishes with `why`.
  void cancel(const std::string& why) {
    if (reason.empty()) reason = why;
    boost::system::error_code ec;
    socket.close(ec);
    if (connecting) connecting->close(ec);
    if (relay) relay->close(why);
  }

  ClientInfo client;
  tcp::socket socket;
  asio::steady_timer deadline;
  std::shared_ptr<stream_descriptor> connecting;  // the endpoint socket while connecting
  std::shared_ptr<Relay> relay;
  std::string route = "none";
  std::string user, session, reason;
  RelayStats stats;
  bool timed_out = false;
  bool in_pre_routing = true;
  bool handed_off = false;
};

struct GatewayServer::FirstPdu {
  std::vector<uint8_t> bytes;
  x224::ConnectionRequest request;
};

namespace {

void set_rcvlowat(int fd, int bytes) {
  ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof bytes);
}

bool peer_hung_up(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : log_quote(s); }

void wipe(std::string& s) {
  OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

// A non-blocking stream socket connected (or connecting) to a Unix path or numeric host:port.
Result<UniqueFd> start_connect(const SessionEndpoint& ep, bool use_unix, bool& in_progress) {
  in_progress = false;
  if (use_unix) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (ep.unix_path.size() >= sizeof addr.sun_path) return fail("endpoint socket path too long");
    std::memcpy(addr.sun_path, ep.unix_path.data(), ep.unix_path.size());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return fail_errno("socket(AF_UNIX)");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
      // EAGAIN: the endpoint's listen backlog is full; a Unix connect cannot be waited for.
      return fail_errno("connect(" + ep.unix_path + ")");
    }
    return fd;
  }
  auto colon = ep.tcp.rfind(':');
  if (colon == std::string::npos) return fail("endpoint tcp address " + ep.tcp + " lacks a port");
  std::string host = ep.tcp.substr(0, colon), port = ep.tcp.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || !found) {
    return fail("endpoint tcp address " + ep.tcp + " is not numeric host:port");
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(found, ::freeaddrinfo);
  UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket(tcp)");
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd.get(), found->ai_addr, found->ai_addrlen) < 0) {
    if (errno != EINPROGRESS) return fail_errno("connect(" + ep.tcp + ")");
    in_progress = true;
  }
  return fd;
}

}  // namespace

GatewayServer::GatewayServer(asio::io_context& io, GatewayConfig config, BrokerClient& broker,
                             LogonHandoff* logon)
    : io_(io),
      config_(std::move(config)),
      broker_(broker),
      logon_(logon),
      acceptor_(io),
      slot_free_(io),
      relay_mode_(config_.relay_mode) {}

GatewayServer::~GatewayServer() = default;

Result<uint16_t> GatewayServer::listen() {
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(config_.listen.address, ec);
  if (ec) return fail("listen address " + config_.listen.address + ": " + ec.message());
  tcp::endpoint ep(ip, config_.listen.port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail("listen " + config_.listen.address + ":" + std::to_string(config_.listen.port) +
                ": " + ec.message());
  }
  return acceptor_.local_endpoint().port();
}

void GatewayServer::start() {
  asio::co_spawn(io_, accept_loop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("gateway-accept-loop-failed error={}", log_quote(ex.what()));
    }
  });
}

void GatewayServer::stop() {
  if (stopping_) return;
  stopping_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  slot_free_.cancel();
  for (auto& [id, weak] : connections_) {
    if (auto conn = weak.lock()) conn->cancel("shutdown");
  }
}

asio::awaitable<void> GatewayServer::accept_loop() {
  boost::system::error_code ec;
  for (;;) {
    // Full of waiting clients: leave new ones in the kernel backlog until a slot frees (at the
    // latest after first_pdu_timeout) instead of refusing them.
    while (!stopping_ && pre_routing_ >= config_.limits.max_pre_routing) {
      slot_free_.expires_at(asio::steady_timer::time_point::max());
      co_await slot_free_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (stopping_) co_return;
    tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {
      spdlog::warn("gateway-accept-failed error={}", log_quote(ec.message()));
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    ClientInfo info;
    info.id = next_id_++;
    info.accepted = Clock::now();
    tcp::endpoint remote = socket.remote_endpoint(ec);
    info.address = ec ? "unknown" : remote.address().to_string();
    info.port = ec ? 0 : remote.port();
    if (active_ >= config_.limits.max_connections) {
      spdlog::warn("gateway-connection conn={} peer={}:{} route=none reason=\"too many connections\"",
                   info.id, info.address, info.port);
      socket.close(ec);
      continue;
    }
    auto conn = std::make_shared<Connection>(std::move(socket), std::move(info));
    ++active_;
    ++pre_routing_;
    connections_[conn->client.id] = conn;
    asio::co_spawn(io_, serve(conn), [this, conn](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        conn->reason = std::string("internal error: ") + ex.what();
      }
      // serve() did not reach its own cleanup.
      release_pre_routing(*conn);
      connections_.erase(conn->client.id);
      if (!conn->handed_off) {
        --active_;
        log_end(*conn);
      }
    });
  }
}

void GatewayServer::release_pre_routing(Connection& conn) {
  if (!conn.in_pre_routing) return;
  conn.in_pre_routing = false;
  --pre_routing_;
  slot_free_.cancel();
}

asio::awaitable<void> GatewayServer::serve(std::shared_ptr<Connection> conn) {
  FirstPdu pdu;
  if (co_await read_first_pdu(*conn, pdu)) {
    Route route = classify(pdu.request);
    if (route.kind == RouteKind::kToken) {
      co_await route_by_token(conn, pdu, std::move(route.token));
    } else if (route.kind == RouteKind::kLogon) {
      hand_to_logon(conn, route.hash_user);
    } else {
      conn->reason = route.reason;
    }
  }
  release_pre_routing(*conn);
  connections_.erase(conn->client.id);
  if (!conn->handed_off) {
    boost::system::error_code ec;
    conn->socket.close(ec);
    --active_;
    log_end(*conn);
  }
}

void GatewayServer::arm_first_pdu_deadline(Connection& conn) {
  std::weak_ptr<Connection> weak = connections_[conn.client.id];
  conn.deadline.expires_after(config_.limits.first_pdu_timeout);
  conn.deadline.async_wait([weak](const boost::system::error_code& ec) {
    auto c = weak.lock();
    if (ec || !c || !c->in_pre_routing) return;
    c->timed_out = true;
    c->cancel("timeout waiting for the connection request");
  });
}

GatewayServer::Peek GatewayServer::peek_once(Connection& conn, int& lowat, FirstPdu& out) {
  const int fd = conn.socket.native_handle();
  ssize_t n = ::recv(fd, peek_buffer_.data(), peek_buffer_.size(), MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Peek::kWait;
    conn.reason = std::string("recv: ") + std::strerror(errno);
    return Peek::kRefused;
  }
  if (n == 0) {
    conn.reason = "closed before the connection request";
    return Peek::kRefused;
  }
  std::span<const uint8_t> data(peek_buffer_.data(), static_cast<size_t>(n));
  PrefixState state = examine_prefix(data);
  if (state.kind == PrefixState::kInvalid) {
    conn.reason = state.reason;
    return Peek::kRefused;
  }
  if (state.kind == PrefixState::kComplete) {
    out.bytes.assign(data.begin(), data.begin() + static_cast<ptrdiff_t>(state.needed));
    auto request = x224::parse_connection_request(out.bytes);
    if (!request) {
      conn.reason = request.error().message;
      return Peek::kRefused;
    }
    out.request = std::move(*request);
    if (lowat != 1) set_rcvlowat(fd, 1);
    return Peek::kComplete;
  }
  // Incomplete: let the kernel wake us only once the announced length is there.
  if (static_cast<int>(state.needed) == lowat) return Peek::kShort;
  lowat = static_cast<int>(state.needed);
  set_rcvlowat(fd, lowat);
  return Peek::kAgain;  // bytes that came in meanwhile raised no new wakeup
}

asio::awaitable<bool> GatewayServer::read_first_pdu(Connection& conn, FirstPdu& out) {
  arm_first_pdu_deadline(conn);
  struct StopDeadline {
    asio::steady_timer& t;
    ~StopDeadline() { t.cancel(); }
  } stop_deadline{conn.deadline};
  int lowat = 1;
  bool peek_now = true;  // data may have come with the connection: look before waiting
  boost::system::error_code ec;
  for (;;) {
    bool woke = false;
    if (!peek_now) {
      co_await conn.socket.async_wait(tcp::socket::wait_read,
                                      asio::redirect_error(asio::use_awaitable, ec));
      if (!conn.reason.empty()) co_return false;  // timed out or shut down
      if (ec) {
        conn.reason = "wait: " + ec.message();
        co_return false;
      }
      woke = true;
    }
    peek_now = false;
    switch (peek_once(conn, lowat, out)) {
      case Peek::kComplete:
        co_return true;
      case Peek::kRefused:
        co_return false;
      case Peek::kAgain:
        peek_now = true;
        continue;
      case Peek::kWait:
        continue;
      case Peek::kShort:
        break;
    }
    if (!woke) continue;
    if (peer_hung_up(conn.socket.native_handle())) {
      conn.reason = "connection request truncated by the client closing";
      co_return false;
    }
    // Woken with fewer bytes than SO_RCVLOWAT (TCP ignores it under memory pressure): look
    // again shortly; the deadline still bounds the wait.
    asio::steady_timer pause(io_, std::chrono::milliseconds(20));
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!conn.reason.empty()) co_return false;
    peek_now = true;
  }
}

asio::awaitable<void> GatewayServer::route_by_token(std::shared_ptr<Connection> conn,
                                                    FirstPdu& pdu, std::string token) {
  conn->route = "token";
  auto redeemed = co_await broker_.redeem(std::move(token));
  if (!conn->reason.empty()) co_return;  // shut down meanwhile
  if (!redeemed) {
    conn->reason = "token refused: " + redeemed.error().message;
    co_return;
  }
  conn->user = redeemed->user;
  conn->session = redeemed->session_id;
  std::string cookie = "Cookie: msts=" + redeemed->secret;
  wipe(redeemed->secret);
  auto rewritten = x224::rewrite_cookie(pdu.request, cookie);
  wipe(cookie);
  if (!rewritten) {
    conn->reason = "rewrite: " + rewritten.error().message;
    co_return;
  }
  struct Wipe {
    std::vector<uint8_t>& v;
    ~Wipe() { OPENSSL_cleanse(v.data(), v.size()); }
  } wipe_pdu{*rewritten};

  auto endpoint = co_await connect_endpoint(*conn, redeemed->endpoint);
  if (!conn->reason.empty()) co_return;
  if (!endpoint) {
    conn->reason = "endpoint: " + endpoint.error().str();
    co_return;
  }
  if (!hand_over_request(*conn, endpoint->get(), *rewritten, pdu.bytes.size())) co_return;
  release_pre_routing(*conn);
  UniqueFd client(conn->socket.release());
  conn->relay = Relay::create(io_.get_executor(), std::move(client), std::move(*endpoint), relay_mode_);
  spdlog::debug("gateway-routed conn={} user={} session={}", conn->client.id, or_dash(conn->user),
                or_dash(conn->session));
  conn->stats = co_await conn->relay->run();
  if (conn->reason.empty()) conn->reason = conn->stats.reason;
}

bool GatewayServer::hand_over_request(Connection& conn, int endpoint_fd,
                                      const std::vector<uint8_t>& rewritten, size_t original_size) {
  // A fresh socket's send buffer always takes a PDU of at most 260 bytes in one go.
  ssize_t sent = ::send(endpoint_fd, rewritten.data(), rewritten.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent != static_cast<ssize_t>(rewritten.size())) {
    conn.reason = std::string("endpoint: send: ") + (sent < 0 ? std::strerror(errno) : "short write");
    return false;
  }
  // Only now drop the original request (peeked so far) from the client socket.
  std::vector<uint8_t> scratch(original_size);
  ssize_t got = ::recv(conn.socket.native_handle(), scratch.data(), scratch.size(), MSG_DONTWAIT);
  OPENSSL_cleanse(scratch.data(), scratch.size());
  if (got != static_cast<ssize_t>(scratch.size())) {
    conn.reason = "client: could not consume the connection request";
    return false;
  }
  return true;
}

asio::awaitable<Result<UniqueFd>> GatewayServer::connect_endpoint(Connection& conn,
                                                                  const SessionEndpoint& ep) {
  bool use_unix = !ep.unix_path.empty() &&
                  (config_.prefer == EndpointPreference::kUnix || ep.tcp.empty());
  bool in_progress = false;
  auto fd = start_connect(ep, use_unix, in_progress);
  if (!fd || !in_progress) co_return fd;
  conn.connecting = std::make_shared<stream_descriptor>(io_, fd->release());
  std::weak_ptr<stream_descriptor> weak = conn.connecting;
  asio::steady_timer timer(io_);
  timer.expires_after(config_.limits.connect_timeout);
  bool timed_out = false;
  timer.async_wait([weak, &timed_out](const boost::system::error_code& ec) {
    auto d = weak.lock();
    if (ec || !d) return;
    timed_out = true;
    boost::system::error_code ignored;
    d->cancel(ignored);
  });
  boost::system::error_code ec;
  co_await conn.connecting->async_wait(stream_descriptor::wait_write,
                                       asio::redirect_error(asio::use_awaitable, ec));
  timer.cancel();
  auto descriptor = std::move(conn.connecting);
  if (!conn.reason.empty() || !descriptor->is_open()) co_return fail("cancelled");
  if (timed_out) co_return fail("connect(" + ep.tcp + "): timed out");
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(descriptor->native_handle(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (ec || err != 0) co_return fail("connect(" + ep.tcp + ")", err ? err : ec.value());
  co_return UniqueFd(descriptor->release());
}

void GatewayServer::hand_to_logon(std::shared_ptr<Connection> conn, const std::string& hash_user) {
  conn->route = "logon";
  conn->user = hash_user;
  if (!logon_ || !config_.logon.enabled) {
    conn->reason = "no launch token and the logon front is off";
    return;
  }
  release_pre_routing(*conn);
  UniqueFd fd(conn->socket.release());
  // FreeRDP expects a blocking socket, as its own listener would hand it.
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  auto done = [this] {
    asio::post(io_, [this] { --active_; });
  };
  if (!logon_->hand_off(fd, conn->client, std::move(done))) {
    conn->reason = "logon front busy";
    return;  // fd closes here
  }
  conn->handed_off = true;
}

void GatewayServer::log_end(const Connection& conn) const {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - conn.client.accepted);
  spdlog::info(
      "gateway-connection conn={} peer={}:{} route={} user={} session={} bytes_from_client={} "
      "bytes_to_client={} duration_ms={} splice={} reason={}",
      conn.client.id, conn.client.address, conn.client.port, conn.route, or_dash(conn.user),
      or_dash(conn.session), conn.stats.from_client, conn.stats.to_client, ms.count(),
      conn.stats.spliced ? "yes" : "no", log_quote(conn.reason.empty() ? "unknown" : conn.reason));
}

}  // namespace appvirt::gateway
