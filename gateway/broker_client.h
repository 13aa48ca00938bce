#pragma once
// The gateway's view of the broker's internal API (docs/gateway.md): redeem a launch token for a
// session endpoint + secret, and log a plain RDP client on (PAM) for a fresh launch token. A seam:
// the daemon uses HttpsBrokerClient; tests may use any implementation. Both calls run on the
// gateway's io_context and must honour their own deadline.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <tl/expected.hpp>

namespace appvirt::gateway {

struct SessionEndpoint {
  std::string unix_path;  // empty when the session has no Unix socket for us
  std::string tcp;        // "host:port", empty when none
};

struct Redemption {
  std::string session_id;
  std::string user;
  SessionEndpoint endpoint;
  std::string secret;  // goes into "Cookie: msts=<secret>"; never logged
};

struct LogonRequest {
  std::string username;
  std::string password;  // wiped by the implementation after use; never logged
  std::optional<std::string> app;
  std::string client_address;
};

struct LogonReply {
  std::string token;  // launch token for the redirect; never logged
  std::string session_id;
  std::string user;
};

struct BrokerError {
  unsigned status = 0;  // HTTP status, 0 when the broker was not reached or answered nonsense
  std::string message;
  std::optional<std::chrono::seconds> retry_after;  // with 429
};

template <class T>
using BrokerResult = tl::expected<T, BrokerError>;

class BrokerClient {
 public:
  virtual ~BrokerClient() = default;
  virtual boost::asio::awaitable<BrokerResult<Redemption>> redeem(std::string token) = 0;
  virtual boost::asio::awaitable<BrokerResult<LogonReply>> logon(LogonRequest request) = 0;
};

// A secret or token that can go into a cookie line: printable ASCII without spaces, 1..200.
bool is_cookie_safe(std::string_view value);

}  // namespace appvirt::gateway
