#pragma once
// Fakes of the broker's seams for unit tests: passwords and groups from maps, a host that keeps
// sessions in memory (and can be made unreachable), and a helper that runs one HTTP request
// through a router on a private io_context.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <map>
#include <mutex>
#include <optional>

#include "broker/authenticator.h"
#include "broker/host_client.h"
#include "broker/user_directory.h"
#include "common/http_server.h"

namespace appvirt::broker::testing {

class FakeAuthenticator : public Authenticator {
 public:
  std::map<std::string, std::string> passwords;
  bool broken = false;  // every call fails like an unreachable directory
  AuthResult authenticate(const std::string& user, const std::string& password,
                          const std::string& address) override {
    std::lock_guard lock(mu_);
    ++calls;
    last_address = address;
    if (broken) return {AuthResult::Status::error, user, "directory down"};
    auto it = passwords.find(user);
    if (it == passwords.end() || it->second != password) {
      return {AuthResult::Status::denied, user, "bad password"};
    }
    return {AuthResult::Status::ok, user, ""};
  }
  int calls = 0;
  std::string last_address;

 private:
  std::mutex mu_;
};

class FakeUserDirectory : public UserDirectory {
 public:
  std::map<std::string, std::vector<std::string>> groups;
  bool only_known = false;  // users not in `groups` do not exist (as NSS would say)
  Result<std::vector<std::string>> groups_of(const std::string& user) override {
    std::lock_guard lock(mu_);
    auto it = groups.find(user);
    if (it == groups.end() && only_known) return fail("getpwnam_r(" + user + "): no such user");
    if (it == groups.end()) return std::vector<std::string>{user};
    return it->second;
  }

 private:
  std::mutex mu_;
};

class FakeHostClient : public HostClient {
 public:
  std::map<std::string, HostSession> sessions;  // by id
  bool unreachable = false;
  unsigned launch_status = 0;  // non-zero: launches fail with this HTTP status
  int launches = 0;
  int logoffs = 0;
  std::chrono::milliseconds launch_delay{0};  // a launch takes this long (hostd starts Xvfb...)
  HostLaunchRequest last_launch;
  // What health() says the host offers (VM sessions: docs/vm.md); "" = not said (old hostd).
  std::string isolation;
  int vm_capacity = 0;
  int vm_sessions = 0;

  template <class T>
  static HostResult<T> down() {
    return tl::unexpected(HostCallError{0, "connect: refused"});
  }

  boost::asio::awaitable<HostResult<HostSession>> launch(const HostRecord&,
                                                         const HostLaunchRequest& r) override {
    if (unreachable) co_return down<HostSession>();
    if (launch_status) co_return tl::unexpected(HostCallError{launch_status, "refused"});
    if (launch_delay.count() > 0) {
      boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, launch_delay);
      boost::system::error_code ec;
      co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    ++launches;
    last_launch = r;
    HostSession s;
    s.session_id = "sess" + std::to_string(launches);
    s.user = r.user;
    s.app_id = r.app_id;
    s.state = "running";
    s.display = ":" + std::to_string(200 + launches);
    s.endpoint_unix = "/run/appvirt/s/" + s.session_id + "/rdp.sock";
    s.secret = "secret-of-" + s.session_id;
    sessions[s.session_id] = s;
    co_return s;
  }
  boost::asio::awaitable<HostResult<HostSession>> get(const HostRecord&,
                                                      const std::string& id) override {
    if (unreachable) co_return down<HostSession>();
    auto it = sessions.find(id);
    if (it == sessions.end()) co_return tl::unexpected(HostCallError{404, "no such session"});
    HostSession s = it->second;
    s.secret.clear();
    co_return s;
  }
  boost::asio::awaitable<HostResult<std::vector<HostSession>>> list(const HostRecord&) override {
    if (unreachable) co_return down<std::vector<HostSession>>();
    std::vector<HostSession> out;
    for (auto [id, s] : sessions) {
      s.secret.clear();
      out.push_back(s);
    }
    co_return out;
  }
  boost::asio::awaitable<HostResult<HostSession>> logoff(const HostRecord&,
                                                         const std::string& id) override {
    if (unreachable) co_return down<HostSession>();
    auto it = sessions.find(id);
    if (it == sessions.end()) co_return tl::unexpected(HostCallError{404, "no such session"});
    ++logoffs;
    it->second.state = "ended";
    it->second.end_reason = "logoff";
    co_return it->second;
  }
  boost::asio::awaitable<HostResult<HostHealth>> health(const HostRecord&) override {
    if (unreachable) co_return down<HostHealth>();
    int live = 0;
    for (const auto& [id, s] : sessions) live += s.state != "ended";
    co_return HostHealth{live, "v2", isolation, vm_capacity, vm_sessions};
  }
  // Live limit and timeout changes, in order: (user, body). A user without a running session
  // has no container and no session to change: 404, as on hostd.
  std::vector<std::pair<std::string, nlohmann::json>> limit_pushes, timeout_pushes;
  boost::asio::awaitable<HostResult<nlohmann::json>> set_user_limits(
      const HostRecord&, const std::string& user, const nlohmann::json& limits) override {
    co_return record_push(limit_pushes, user, limits);
  }
  boost::asio::awaitable<HostResult<nlohmann::json>> set_user_timeouts(
      const HostRecord&, const std::string& user, const nlohmann::json& timeouts) override {
    co_return record_push(timeout_pushes, user, timeouts);
  }

 private:
  HostResult<nlohmann::json> record_push(std::vector<std::pair<std::string, nlohmann::json>>& log,
                                         const std::string& user, const nlohmann::json& body) {
    if (unreachable) return down<nlohmann::json>();
    bool live = false;
    for (const auto& [id, s] : sessions) live |= s.user == user && s.state != "ended";
    if (!live) return tl::unexpected(HostCallError{404, "no live session"});
    log.emplace_back(user, body);
    return body;
  }
};

// Runs a coroutine to completion on io (which may also run pool-posted completions).
template <class T>
T run_coro(boost::asio::io_context& io, boost::asio::awaitable<T> aw) {
  std::optional<T> out;
  std::exception_ptr error;
  // Stops the loop as soon as this coroutine is done, even when other work (a server's pending
  // handler) is still queued.
  boost::asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e, T v) {
    error = e;
    if (!e) out = std::move(v);
    io.stop();
  });
  io.restart();
  io.run_for(std::chrono::seconds(10));
  if (error) std::rethrow_exception(error);
  if (!out) throw std::runtime_error("coroutine did not finish within 10 s");
  return std::move(*out);
}

struct Call {
  http::bhttp::verb method = http::bhttp::verb::get;
  std::string target;
  std::string body;
  std::map<std::string, std::string> headers;
};

inline http::Response send(boost::asio::io_context& io, const http::Router& router, Call c) {
  http::Request req{c.method, c.target, 11};
  for (const auto& [k, v] : c.headers) req.set(k, v);
  if (!c.body.empty() && !c.headers.count("Content-Type")) req.set("Content-Type", "application/json");
  req.body() = c.body;
  req.prepare_payload();
  auto run = [](const http::Router& r, http::Request q) -> boost::asio::awaitable<http::Response> {
    co_return co_await http::detail::dispatch(r, q);
  };
  return run_coro(io, run(router, std::move(req)));
}

}  // namespace appvirt::broker::testing
