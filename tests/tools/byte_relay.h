#pragma once
// ByteRelay sits between FreeRDP and the RDP server and counts the bytes on the wire (TPKT,
// TLS records and all) in both directions. FreeRDP gets one end of a socketpair (2.11 takes an
// already connected socket when the host name is "|" and the port is the fd, see
// libfreerdp/core/tcp.c freerdp_tcp_connect); the relay thread copies between the other end and
// the real connection. FreeRDP's own counters (freerdp_get_stats) count TLS plaintext only.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"
#include "common/unique_fd.h"

namespace appvirt::probe {

// A server address: a Unix socket path (starts with '/') or host:port.
struct Target {
  std::string unix_path;
  std::string host;
  uint16_t port = 0;
};

Result<Target> parse_target(const std::string& text);

// Connects to the target within the timeout; returns the connected socket.
Result<UniqueFd> connect_target(const Target& target, std::chrono::milliseconds timeout);

class ByteRelay {
 public:
  ByteRelay() = default;
  ByteRelay(const ByteRelay&) = delete;
  ByteRelay& operator=(const ByteRelay&) = delete;
  ~ByteRelay();

  // Takes the connected server socket and starts copying. Returns the client-side fd to hand to
  // FreeRDP; FreeRDP owns and closes it.
  Result<int> start(UniqueFd server);
  // Makes the relay thread close both connections soon; safe from any thread.
  void interrupt();
  // Stops copying and joins the thread; counters stay readable. Owner's thread only.
  void stop();

  uint64_t bytes_received() const { return from_server_.load(); }
  uint64_t bytes_sent() const { return to_server_.load(); }

  // Deliveries = chunks handed on to FreeRDP's end. Waits until the count differs from *seen
  // (returns at once if it already does) or the timeout passes; then stores the count in *seen.
  // Lets FreeRDP's polling loops wake when server data arrives (see sleep_shortcut.h).
  void wait_for_delivery(uint64_t* seen, std::chrono::milliseconds timeout);

 private:
  void run();
  bool pump(int from, int to, std::atomic<uint64_t>* counter);
  void note_delivery();

  UniqueFd server_;
  UniqueFd local_;
  UniqueFd stop_event_;
  std::thread thread_;
  std::atomic<uint64_t> from_server_{0};
  std::atomic<uint64_t> to_server_{0};
  std::mutex delivery_mutex_;
  std::condition_variable delivery_cv_;
  uint64_t deliveries_ = 0;  // guarded by delivery_mutex_
};

}  // namespace appvirt::probe
