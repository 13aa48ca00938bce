#pragma once
// Byte relay between the client and the session endpoint once a connection is routed. Each
// direction moves data with splice(2) through its own pipe (socket -> pipe -> socket, no copy to
// user space); where splice is not supported for a pair of descriptors it falls back to
// read/write. A direction that sees end-of-stream half-closes the other side (shutdown SHUT_WR)
// and the relay ends when both directions have ended, or at once on an error or close().
//
// Runs on a single-threaded io_context. The process must ignore SIGPIPE (splice has no
// MSG_NOSIGNAL).
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "common/unique_fd.h"

namespace appvirt::gateway {

enum class RelayMode { kSplice, kCopy };

struct RelayStats {
  uint64_t from_client = 0;  // bytes client -> endpoint
  uint64_t to_client = 0;    // bytes endpoint -> client
  std::string reason;        // "client-closed", "endpoint-closed", "client-error: ...", ...
  bool spliced = false;      // true when every byte went through splice
};

class Relay : public std::enable_shared_from_this<Relay> {
 public:
  // Takes both connected sockets (any stream sockets).
  static std::shared_ptr<Relay> create(boost::asio::any_io_executor executor, UniqueFd client,
                                       UniqueFd endpoint, RelayMode mode = RelayMode::kSplice);

  // Relays until both directions ended or close() was called; returns the totals.
  boost::asio::awaitable<RelayStats> run();

  // Ends the relay now (gateway shutdown); reason goes into the stats.
  void close(const std::string& reason);

 private:
  struct Side;
  Relay(boost::asio::any_io_executor executor, UniqueFd client, UniqueFd endpoint, RelayMode mode);
  static boost::asio::awaitable<void> pump(std::shared_ptr<Relay> self, int direction);
  boost::asio::awaitable<std::string> pump_splice(int direction, bool& unsupported);
  boost::asio::awaitable<std::string> pump_copy(int direction);
  void finish(int direction, const std::string& outcome);

  boost::asio::posix::stream_descriptor client_;
  boost::asio::posix::stream_descriptor endpoint_;
  boost::asio::steady_timer done_;
  RelayMode mode_;
  int running_ = 0;
  bool closed_ = false;
  bool copied_ = false;
  RelayStats stats_;
};

}  // namespace appvirt::gateway
