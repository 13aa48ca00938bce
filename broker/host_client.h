#pragma once
// The broker's side of hostd's control API (docs/session-host.md). An interface, so handler
// tests run against a fake host; UnixHostClient speaks HTTP over the hostd Unix socket of a host
// on the same machine (remote hosts over mutual TLS will be a second implementation).
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <tl/expected.hpp>
#include <vector>

#include "broker/store.h"

namespace appvirt::broker {

struct HostLaunchRequest {
  std::string user;
  std::string app_id;
  std::vector<std::string> command;
  nlohmann::json limits = nlohmann::json::object();
  int width = 1280;
  int height = 800;
  int64_t idle_timeout_s = 0;        // policy idle_timeout; 0 = never
  int64_t disconnect_timeout_s = 0;  // policy disconnect_timeout; 0 = never
  std::string isolation = "container";  // or "vm": hostd boots a VM session (docs/vm.md)
};

struct HostSession {
  std::string session_id;
  std::string user;
  std::string app_id;
  std::string state;  // starting | running | ended
  std::string end_reason;
  std::string display;
  std::string endpoint_unix;
  std::string endpoint_tcp;
  std::string secret;  // only in a launch reply
  // Live figures of a running session (null when hostd does not know them): the limits in force
  // and the session cgroup's usage, shown on the admin pages.
  nlohmann::json resources;
};

struct HostHealth {
  int sessions = 0;  // all of them, VM sessions included
  std::string cgroup;
  std::string isolation;  // what hostd offers: "container" or "container,vm"; "" = not said
  int vm_capacity = 0;
  int vm_sessions = 0;
};

struct HostCallError {
  unsigned status = 0;  // HTTP status from hostd; 0 when hostd was not reachable or answered garbage
  std::string message;
  bool not_found() const { return status == 404; }
};

template <class T>
using HostResult = tl::expected<T, HostCallError>;

class HostClient {
 public:
  virtual ~HostClient() = default;
  virtual boost::asio::awaitable<HostResult<HostSession>> launch(const HostRecord& host,
                                                                 const HostLaunchRequest& req) = 0;
  virtual boost::asio::awaitable<HostResult<HostSession>> get(const HostRecord& host,
                                                              const std::string& session_id) = 0;
  virtual boost::asio::awaitable<HostResult<std::vector<HostSession>>> list(
      const HostRecord& host) = 0;
  virtual boost::asio::awaitable<HostResult<HostSession>> logoff(const HostRecord& host,
                                                                 const std::string& session_id) = 0;
  virtual boost::asio::awaitable<HostResult<HostHealth>> health(const HostRecord& host) = 0;
  // PUT /v1/users/{user}/limits: live change of the user's container limits; returns the limits
  // hostd applied. 404 when the user has no container there.
  virtual boost::asio::awaitable<HostResult<nlohmann::json>> set_user_limits(
      const HostRecord& host, const std::string& user, const nlohmann::json& limits) = 0;
  // PUT /v1/users/{user}/timeouts: live change of the idle/disconnect timeouts (seconds, 0 =
  // never) of the user's running sessions there; returns hostd's reply. 404 when there are none.
  virtual boost::asio::awaitable<HostResult<nlohmann::json>> set_user_timeouts(
      const HostRecord& host, const std::string& user, const nlohmann::json& timeouts) = 0;
};

// Parses hostd's session JSON (launch reply or listing entry). Exposed for tests.
tl::expected<HostSession, std::string> host_session_from_json(const nlohmann::json& j);

class UnixHostClient final : public HostClient {
 public:
  // timeout bounds each call from connect to the last byte of the reply (a launch starts Xvfb,
  // the app and the RDP endpoint, so it needs tens of seconds in the worst case).
  UnixHostClient(std::chrono::milliseconds timeout, std::chrono::milliseconds quick_timeout)
      : timeout_(timeout), quick_timeout_(quick_timeout) {}

  boost::asio::awaitable<HostResult<HostSession>> launch(const HostRecord& host,
                                                         const HostLaunchRequest& req) override;
  boost::asio::awaitable<HostResult<HostSession>> get(const HostRecord& host,
                                                      const std::string& session_id) override;
  boost::asio::awaitable<HostResult<std::vector<HostSession>>> list(const HostRecord& host) override;
  boost::asio::awaitable<HostResult<HostSession>> logoff(const HostRecord& host,
                                                         const std::string& session_id) override;
  boost::asio::awaitable<HostResult<HostHealth>> health(const HostRecord& host) override;
  boost::asio::awaitable<HostResult<nlohmann::json>> set_user_limits(
      const HostRecord& host, const std::string& user, const nlohmann::json& limits) override;
  boost::asio::awaitable<HostResult<nlohmann::json>> set_user_timeouts(
      const HostRecord& host, const std::string& user, const nlohmann::json& timeouts) override;

 private:
  struct Reply {
    unsigned status = 0;
    nlohmann::json body;
  };
  boost::asio::awaitable<HostResult<Reply>> call(const HostRecord& host,
                                                 boost::beast::http::verb method,
                                                 const std::string& target,
                                                 const std::string& body,
                                                 std::chrono::milliseconds timeout);

  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds quick_timeout_;
};

}  // namespace appvirt::broker
