#pragma once
// The accept loop of appvirt-rdp. FreeRDP never sees a raw connection: the gate accepts on the
// endpoint's sockets itself, peeks (never consumes) the client's first PDU, the X.224 Connection
// Request, and hands the socket on only when its cookie line is exactly "Cookie: msts=<secret>".
// Everything else (garbage, other cookies, truncated, oversized or slow PDUs) is closed with one
// log line naming the reason - never the secret or the offered cookie.
//
// Bounded: at most max_pending connections wait for their first PDU, each for at most
// first_pdu_timeout; while all slots are taken the listeners are not polled, so further clients
// wait in the kernel backlog instead of being refused.
#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::rdp {

// Where a handed-off connection came from, for FreeRDP's peer fields and for logs.
struct PeerAddress {
  bool local = true;     // Unix socket or loopback address
  std::string host;      // numeric address, "unix" for Unix sockets
};

class CookieGate {
 public:
  struct Limits {
    size_t max_pending = 32;
    std::chrono::milliseconds first_pdu_timeout{5000};
  };
  // Called on the gate's thread with a socket whose Connection Request is still unread.
  using HandOff = std::function<void(UniqueFd, const PeerAddress&)>;

  // listeners: listening sockets (Unix or TCP), owned by the caller. secret: the session secret;
  // the expected line is "Cookie: msts=" + secret.
  CookieGate(std::vector<int> listeners, std::string secret, HandOff hand_off, Limits limits);
  ~CookieGate();
  CookieGate(const CookieGate&) = delete;
  CookieGate& operator=(const CookieGate&) = delete;

  // Serves until stop_fd becomes readable (a signalfd or eventfd); fails only when poll() itself
  // fails. Per-connection problems are logged and never end the loop.
  Result<void> run(int stop_fd);

  // Checks a cookie line against the secret in constant time (for FreeRDP's late re-check too).
  static bool cookie_matches(std::string_view cookie_line, std::string_view secret);

 private:
  struct Pending;
  enum class Verdict { kWait, kAccept, kReject };

  size_t fill_poll_set(int stop_fd, bool room, std::vector<pollfd>& fds,
                       std::vector<size_t>& polled) const;
  void accept_from(int listener);
  Verdict examine(Pending& p, short revents, std::string& reason);
  void finish(size_t index, Verdict verdict, const std::string& reason);
  int poll_timeout_ms() const;

  std::vector<int> listeners_;
  std::string secret_;
  HandOff hand_off_;
  Limits limits_;
  std::vector<Pending> pending_;
  uint64_t next_id_ = 1;
};

}  // namespace appvirt::rdp
