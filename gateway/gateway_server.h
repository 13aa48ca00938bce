#pragma once
// The gateway's connection handling on one single-threaded io_context (docs/gateway.md):
//   accept -> peek the X.224 Connection Request (bounded size and time, never consumed) ->
//   Cookie: msts=<token>: redeem at the broker, connect to the session endpoint, send the request
//     with the cookie rewritten to the session secret, drop the original, relay (splice);
//   Cookie: mstshash= / no cookie: hand the untouched socket to the logon front;
//   anything else: close.
// A waiting connection costs a socket, a timer and a small coroutine frame: the peek buffer is
// shared (one thread), and SO_RCVLOWAT makes the kernel wake us only when the announced PDU
// length has arrived, so slow clients do not cause wakeups.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "common/x224.h"
#include "gateway/broker_client.h"
#include "gateway/gateway_config.h"
#include "gateway/relay.h"

namespace appvirt::gateway {

// Where an accepted client came from, for logs and for the broker's lockout by address.
struct ClientInfo {
  uint64_t id = 0;
  std::string address;  // numeric IP
  uint16_t port = 0;
  std::chrono::steady_clock::time_point accepted;
};

// The logon front as the gateway core sees it (a seam: the core needs no FreeRDP).
class LogonHandoff {
 public:
  virtual ~LogonHandoff() = default;
  // Takes a socket whose Connection Request is still unread. Returns false (and leaves fd with
  // the caller) when it cannot take more connections. `done` must be called exactly once when
  // the connection has ended, from any thread; the core posts it to its own thread.
  virtual bool hand_off(UniqueFd& fd, const ClientInfo& client, std::function<void()> done) = 0;
};

class GatewayServer {
 public:
  GatewayServer(boost::asio::io_context& io, GatewayConfig config, BrokerClient& broker,
                LogonHandoff* logon);
  ~GatewayServer();

  // Binds and listens; returns the bound port (useful with port 0).
  Result<uint16_t> listen();
  void start();
  // Stops accepting and ends every open connection (reason "shutdown"); the io_context then
  // runs out of work once the logon front has finished its connections too.
  void stop();

  size_t active_connections() const { return active_; }
  size_t pre_routing_connections() const { return pre_routing_; }

  // Relay mode for new connections (config relay.mode; tests).
  void set_relay_mode(RelayMode mode) { relay_mode_ = mode; }

 private:
  struct Connection;
  struct FirstPdu;

  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(std::shared_ptr<Connection> conn);
  // kComplete: out is filled; kRefused: conn.reason says why; kWait: nothing (new) to read;
  // kAgain: SO_RCVLOWAT was raised, look again now; kShort: still fewer bytes than announced.
  enum class Peek { kComplete, kRefused, kWait, kAgain, kShort };
  void arm_first_pdu_deadline(Connection& conn);
  Peek peek_once(Connection& conn, int& lowat, FirstPdu& out);
  boost::asio::awaitable<bool> read_first_pdu(Connection& conn, FirstPdu& out);
  boost::asio::awaitable<void> route_by_token(std::shared_ptr<Connection> conn, FirstPdu& pdu,
                                              std::string token);
  boost::asio::awaitable<Result<UniqueFd>> connect_endpoint(Connection& conn,
                                                            const SessionEndpoint& endpoint);
  // Sends the rewritten request to the endpoint, then reads the original off the client.
  bool hand_over_request(Connection& conn, int endpoint_fd, const std::vector<uint8_t>& rewritten,
                         size_t original_size);
  void hand_to_logon(std::shared_ptr<Connection> conn, const std::string& hash_user);
  void log_end(const Connection& conn) const;
  void release_pre_routing(Connection& conn);

  boost::asio::io_context& io_;
  GatewayConfig config_;
  BrokerClient& broker_;
  LogonHandoff* logon_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer slot_free_;  // wakes the accept loop when a pre-routing slot frees
  std::map<uint64_t, std::weak_ptr<Connection>> connections_;
  // The peek buffer of every waiting connection: one thread, and no suspension between a peek
  // and the use of its bytes.
  std::array<uint8_t, x224::kMaxPduSize + 1> peek_buffer_{};
  size_t active_ = 0;
  size_t pre_routing_ = 0;
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  RelayMode relay_mode_;
};

}  // namespace appvirt::gateway
