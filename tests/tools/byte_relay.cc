#include "tests/tools/byte_relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace appvirt::probe {

Result<Target> parse_target(const std::string& text) {
  Target t;
  if (!text.empty() && text[0] == '/') {
    if (text.size() >= sizeof(sockaddr_un{}.sun_path)) return fail("unix socket path too long");
    t.unix_path = text;
    return t;
  }
  // host:port, or [v6]:port
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return fail("target '" + text + "' is neither a /unix/path nor host:port");
  }
  t.host = text.substr(0, colon);
  if (t.host.front() == '[' && t.host.back() == ']') t.host = t.host.substr(1, t.host.size() - 2);
  char* end = nullptr;
  long port = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port <= 0 || port > 65535) return fail("bad port in target '" + text + "'");
  t.port = static_cast<uint16_t>(port);
  return t;
}

namespace {

// Non-blocking connect bounded by the timeout, then back to blocking mode.
Result<void> connect_bounded(int fd, const sockaddr* addr, socklen_t len,
                             std::chrono::milliseconds timeout, const std::string& what) {
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  if (::connect(fd, addr, len) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) return fail_errno("connect(" + what + ")");
    pollfd p{fd, POLLOUT, 0};
    int n = poll(&p, 1, static_cast<int>(timeout.count()));
    if (n == 0) return fail("connect(" + what + "): timed out", ETIMEDOUT);
    if (n < 0) return fail_errno("poll(connect " + what + ")");
    int err = 0;
    socklen_t elen = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) return fail("connect(" + what + ")", err);
  }
  fcntl(fd, F_SETFL, flags);
  return {};
}

Result<UniqueFd> connect_unix(const std::string& path, std::chrono::milliseconds timeout) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket(AF_UNIX)");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  auto r =
      connect_bounded(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr), timeout, path);
  if (!r) return tl::unexpected(r.error());
  return fd;
}

Result<UniqueFd> connect_tcp(const Target& t, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(t.port);
  int rc = getaddrinfo(t.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return fail("getaddrinfo(" + t.host + "): " + gai_strerror(rc));
  std::string what = t.host + ":" + port;
  Result<UniqueFd> out = fail("connect(" + what + "): no address");
  for (addrinfo* a = res; a; a = a->ai_next) {
    UniqueFd fd(socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) continue;
    auto r = connect_bounded(fd.get(), a->ai_addr, a->ai_addrlen, timeout, what);
    if (!r) {
      out = tl::unexpected(r.error());
      continue;
    }
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    out = std::move(fd);
    break;
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace

Result<UniqueFd> connect_target(const Target& target, std::chrono::milliseconds timeout) {
  if (!target.unix_path.empty()) return connect_unix(target.unix_path, timeout);
  return connect_tcp(target, timeout);
}

ByteRelay::~ByteRelay() { stop(); }

Result<int> ByteRelay::start(UniqueFd server) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return fail_errno("socketpair");
  UniqueFd theirs(sv[1]);
  local_.reset(sv[0]);
  stop_event_.reset(eventfd(0, EFD_CLOEXEC));
  if (!stop_event_) return fail_errno("eventfd");
  server_ = std::move(server);
  thread_ = std::thread([this] { run(); });
  return theirs.release();
}

void ByteRelay::interrupt() {
  if (!stop_event_) return;
  uint64_t one = 1;
  ssize_t n = write(stop_event_.get(), &one, sizeof(one));
  (void)n;  // an eventfd write of 1 cannot fail short of overflow
}

void ByteRelay::stop() {
  if (!thread_.joinable()) return;
  interrupt();
  thread_.join();
  server_.reset();
  local_.reset();
}

// Copies what is readable now; false when the source is closed or broken.
bool ByteRelay::pump(int from, int to, std::atomic<uint64_t>* counter) {
  char buf[65536];
  ssize_t n = read(from, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  *counter += static_cast<uint64_t>(n);
  for (ssize_t off = 0; off < n;) {
    ssize_t w = send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += w;
  }
  return true;
}

void ByteRelay::run() {
  int s = server_.get();
  int l = local_.get();
  for (;;) {
    pollfd fds[3] = {{s, POLLIN, 0}, {l, POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents) break;
    if (fds[0].revents) {
      bool ok = pump(s, l, &from_server_);
      note_delivery();
      if (!ok) break;
    }
    if (fds[1].revents && !pump(l, s, &to_server_)) break;
  }
  // Either side closing ends both directions: FreeRDP sees EOF, the server sees FIN.
  shutdown(s, SHUT_RDWR);
  shutdown(l, SHUT_RDWR);
  note_delivery();  // the EOF is news for FreeRDP too
}

void ByteRelay::note_delivery() {
  {
    std::lock_guard lock(delivery_mutex_);
    ++deliveries_;
  }
  delivery_cv_.notify_all();
}

void ByteRelay::wait_for_delivery(uint64_t* seen, std::chrono::milliseconds timeout) {
  std::unique_lock lock(delivery_mutex_);
  delivery_cv_.wait_for(lock, timeout, [&] { return deliveries_ != *seen; });
  *seen = deliveries_;
}

}  // namespace appvirt::probe
