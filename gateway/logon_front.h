#pragma once
// The logon front for RDP clients that come without a launch token: a FreeRDP peer on the
// untouched socket (TLS security only; no NLA, since PAM cannot check NTLM), which reads the
// credentials of the Client Info PDU once the connection is up (PostConnect), asks the broker to
// log the user on and start or reuse a session, and then sends a Server Redirection PDU whose
// load-balance info is "Cookie: msts=<launch token>": the client reconnects to the gateway with
// the token and takes the token path. A refused logon gets a Logon Error Info (Save Session
// Info) and an Error Info PDU before the disconnect, and no redirect.
//
// One thread per logon connection (FreeRDP peers are blocking state machines), at most
// max_sessions at a time, each bounded by logon.timeout. The broker call itself runs on the
// gateway's io_context; the peer thread waits for it with a deadline. Passwords are wiped from
// FreeRDP's settings as soon as they are read and never logged.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <atomic>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "common/result.h"
#include "gateway/broker_client.h"
#include "gateway/gateway_config.h"
#include "gateway/gateway_server.h"

namespace appvirt::gateway {

// RDP codes the front uses when it refuses a logon (MS-RDPBCGR 2.2.5.1.1, 2.2.10.1.1.4.1).
struct LogonRefusal {
  uint32_t logon_error_type;  // LOGON_FAILED_BAD_PASSWORD / LOGON_FAILED_OTHER
  uint32_t error_info;        // ERRINFO_*
};
// Maps a broker refusal (401 wrong credentials, 403 no entitled app, 429 locked out, else
// unavailable) to what the client is told.
LogonRefusal refusal_for(const BrokerError& error);

class LogonFront : public LogonHandoff {
 public:
  // Loads (or, when neither file exists, generates) the TLS certificate and key.
  static Result<std::unique_ptr<LogonFront>> create(boost::asio::any_io_executor io,
                                                    BrokerClient& broker, const LogonConfig& config,
                                                    std::chrono::milliseconds broker_timeout);
  ~LogonFront() override;

  bool hand_off(UniqueFd& fd, const ClientInfo& client, std::function<void()> done) override;

  // Asks every running logon connection to end now; new hand-offs are refused.
  void stop();
  // Waits for every logon thread (after stop(), each ends within a fraction of a second).
  void join_all();
  size_t running() const;

  struct Session;

 private:
  LogonFront(boost::asio::any_io_executor io, BrokerClient& broker, LogonConfig config,
             std::chrono::milliseconds broker_timeout, std::string cert_pem, std::string key_pem);
  void run(Session& session);
  void pump(Session& session);
  void decide(Session& session);
  void log_end(const Session& session) const;
  BrokerResult<LogonReply> call_broker(LogonRequest request);
  void reap_finished();

  boost::asio::any_io_executor io_;
  BrokerClient& broker_;
  LogonConfig config_;
  std::chrono::milliseconds broker_timeout_;
  std::string cert_pem_, key_pem_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  std::list<Worker> workers_;
};

}  // namespace appvirt::gateway
