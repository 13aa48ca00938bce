#include "session-host/rdp/cookie_gate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <span>

#include "common/log.h"
#include "common/x224.h"

namespace appvirt::rdp {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::string_view kMstsPrefix = "Cookie: msts=";
// A peeked PDU that is still incomplete is looked at again after a growing pause: unread data
// keeps a socket readable, so polling it again at once would spin. Real clients send the whole
// Connection Request in one segment; only broken or hostile ones reach the longer pauses.
constexpr std::chrono::milliseconds kFirstBackoff{10};
constexpr std::chrono::milliseconds kMaxBackoff{250};

PeerAddress peer_address(const sockaddr_storage& addr) {
  PeerAddress out;
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    out.local = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    out.host = text;
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    out.local = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    out.host = text;
  } else {
    out.host = "unix";
  }
  return out;
}

int ms_until(Clock::time_point t, Clock::time_point now) {
  if (t <= now) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(t - now).count();
  return static_cast<int>(std::min<int64_t>(ms, 60'000));
}

}  // namespace

struct CookieGate::Pending {
  UniqueFd fd;
  PeerAddress peer;
  uint64_t id = 0;
  Clock::time_point deadline;
  Clock::time_point next_peek;
  std::chrono::milliseconds backoff{0};
  bool done = false;
};

CookieGate::CookieGate(std::vector<int> listeners, std::string secret, HandOff hand_off,
                       Limits limits)
    : listeners_(std::move(listeners)),
      secret_(std::move(secret)),
      hand_off_(std::move(hand_off)),
      limits_(limits) {}

CookieGate::~CookieGate() = default;

bool CookieGate::cookie_matches(std::string_view cookie_line, std::string_view secret) {
  if (secret.empty() || cookie_line.size() != kMstsPrefix.size() + secret.size()) return false;
  // Both parts compared without early exit, so timing tells nothing about the secret.
  int prefix_diff = CRYPTO_memcmp(cookie_line.data(), kMstsPrefix.data(), kMstsPrefix.size());
  int secret_diff =
      CRYPTO_memcmp(cookie_line.data() + kMstsPrefix.size(), secret.data(), secret.size());
  return (prefix_diff | secret_diff) == 0;
}

// fds = [stop_fd, listeners (only while there is room), pending sockets not in back-off];
// polled[k] is the pending_ index of fds[first_pending + k].
size_t CookieGate::fill_poll_set(int stop_fd, bool room, std::vector<pollfd>& fds,
                                 std::vector<size_t>& polled) const {
  auto now = Clock::now();
  fds.assign(1, pollfd{stop_fd, POLLIN, 0});
  if (room) {
    for (int l : listeners_) fds.push_back(pollfd{l, POLLIN, 0});
  }
  const size_t first_pending = fds.size();
  polled.clear();
  for (size_t i = 0; i < pending_.size(); ++i) {
    if (pending_[i].next_peek > now) continue;
    fds.push_back(pollfd{pending_[i].fd.get(), POLLIN | POLLRDHUP, 0});
    polled.push_back(i);
  }
  return first_pending;
}

Result<void> CookieGate::run(int stop_fd) {
  std::vector<pollfd> fds;
  std::vector<size_t> polled;
  for (;;) {
    const bool room = pending_.size() < limits_.max_pending;
    const size_t first_pending = fill_poll_set(stop_fd, room, fds, polled);
    if (::poll(fds.data(), fds.size(), poll_timeout_ms()) < 0) {
      if (errno == EINTR) continue;
      return fail_errno("poll(rdp listeners)");
    }
    if (fds[0].revents != 0) return {};
    const auto now = Clock::now();
    for (size_t k = 0; k < polled.size(); ++k) {
      short revents = fds[first_pending + k].revents;
      if (revents == 0) continue;
      std::string reason;
      Verdict v = examine(pending_[polled[k]], revents, reason);
      if (v != Verdict::kWait) finish(polled[k], v, reason);
    }
    for (size_t i = 0; i < pending_.size(); ++i) {
      if (!pending_[i].done && pending_[i].deadline <= now) {
        finish(i, Verdict::kReject, "timeout waiting for the connection request");
      }
    }
    std::erase_if(pending_, [](const Pending& p) { return p.done; });
    if (room) {
      for (size_t k = 0; k < listeners_.size(); ++k) {
        if (fds[1 + k].revents & POLLIN) accept_from(listeners_[k]);
      }
    }
  }
}

void CookieGate::accept_from(int listener) {
  while (pending_.size() < limits_.max_pending) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd = ::accept4(listener, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
        // EMFILE and friends: the connection stays queued; the next poll retries after the
        // pending ones have been served or timed out.
        spdlog::warn("rdp-accept-failed error={}", log_quote(std::strerror(errno)));
      }
      return;
    }
    Pending p;
    p.fd.reset(fd);
    p.peer = peer_address(addr);
    p.id = next_id_++;
    p.deadline = Clock::now() + limits_.first_pdu_timeout;
    spdlog::debug("rdp-connection-open conn={} peer={}", p.id, p.peer.host);
    pending_.push_back(std::move(p));
  }
}

CookieGate::Verdict CookieGate::examine(Pending& p, short revents, std::string& reason) {
  uint8_t buf[x224::kMaxPduSize + 1];
  ssize_t n = ::recv(p.fd.get(), buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return Verdict::kWait;
    reason = std::string("recv: ") + std::strerror(errno);
    return Verdict::kReject;
  }
  if (n == 0) {
    reason = "closed before the connection request";
    return Verdict::kReject;
  }
  std::span<const uint8_t> data(buf, static_cast<size_t>(n));
  auto needed = x224::needed_bytes(data);
  if (!needed) {
    reason = needed.error().message;
    return Verdict::kReject;
  }
  if (data.size() < *needed) {
    if (revents & (POLLRDHUP | POLLHUP | POLLERR)) {
      reason = "connection request truncated by the client closing";
      return Verdict::kReject;
    }
    p.backoff = std::min(std::max(p.backoff * 2, kFirstBackoff), kMaxBackoff);
    p.next_peek = Clock::now() + p.backoff;
    return Verdict::kWait;
  }
  if (data.size() > *needed) {
    reason = "data after the connection request";
    return Verdict::kReject;
  }
  auto request = x224::parse_connection_request(data);
  if (!request) {
    reason = request.error().message;
  } else if (!request->cookie) {
    reason = "no cookie";
  } else if (!request->cookie->starts_with(kMstsPrefix)) {
    reason = "cookie is not a Cookie: msts= routing token";
  } else if (!cookie_matches(*request->cookie, secret_)) {
    reason = "wrong secret";
  } else {
    return Verdict::kAccept;
  }
  return Verdict::kReject;
}

void CookieGate::finish(size_t index, Verdict verdict, const std::string& reason) {
  Pending& p = pending_[index];
  p.done = true;
  if (verdict == Verdict::kAccept) {
    spdlog::info("rdp-connection-accepted conn={} peer={}", p.id, p.peer.host);
    hand_off_(std::move(p.fd), p.peer);
  } else {
    spdlog::warn("rdp-connection-refused conn={} peer={} reason={}", p.id, p.peer.host,
                 log_quote(reason));
    p.fd.reset();
  }
}

int CookieGate::poll_timeout_ms() const {
  if (pending_.empty()) return -1;
  auto now = Clock::now();
  int timeout = 60'000;
  for (const Pending& p : pending_) {
    timeout = std::min(timeout, ms_until(p.deadline, now));
    if (p.next_peek > now) timeout = std::min(timeout, ms_until(p.next_peek, now));
  }
  return timeout;
}

}  // namespace appvirt::rdp
