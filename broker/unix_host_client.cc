#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>

#include "broker/host_client.h"
#include "common/http_client.h"

namespace appvirt::broker {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

namespace {

const std::string kNoBody;

std::string string_or_empty(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

HostCallError error_from_reply(unsigned status, const nlohmann::json& body) {
  std::string message = body.is_object() ? string_or_empty(body, "error") : "";
  if (message.empty()) message = "hostd answered " + std::to_string(status);
  return HostCallError{status, message};
}

}  // namespace

tl::expected<HostSession, std::string> host_session_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return tl::unexpected(std::string("session: not an object"));
  HostSession s;
  s.session_id = string_or_empty(j, "session_id");
  if (s.session_id.empty()) return tl::unexpected(std::string("session: no session_id"));
  s.user = string_or_empty(j, "user");
  s.app_id = string_or_empty(j, "app_id");
  s.state = string_or_empty(j, "state");
  s.end_reason = string_or_empty(j, "end_reason");
  // hostd says "running" from the endpoint's start; with no RDP client connected the user sees
  // the session as disconnected (it can be reconnected, and the disconnect timeout runs).
  if (s.state == "running" && j.contains("clients") && j["clients"].is_number_integer() &&
      j["clients"].get<int64_t>() == 0) {
    s.state = "disconnected";
  }
  nlohmann::json resources = nlohmann::json::object();
  for (const char* key : {"limits", "usage"}) {
    if (auto it = j.find(key); it != j.end() && it->is_object()) resources[key] = *it;
  }
  if (!resources.empty()) s.resources = std::move(resources);
  s.display = string_or_empty(j, "display");
  s.secret = string_or_empty(j, "secret");
  if (auto it = j.find("endpoint"); it != j.end() && it->is_object()) {
    s.endpoint_unix = string_or_empty(*it, "unix");
    s.endpoint_tcp = string_or_empty(*it, "tcp");
  }
  return s;
}

asio::awaitable<HostResult<UnixHostClient::Reply>> UnixHostClient::call(
    const HostRecord& host, bhttp::verb method, const std::string& target, const std::string& body,
    std::chrono::milliseconds timeout) {
  if (host.socket.empty()) {
    co_return tl::unexpected(HostCallError{0, "host " + host.name + " has no control socket"});
  }
  auto ex = co_await asio::this_coro::executor;
  asio::local::stream_protocol::socket socket(ex);
  asio::steady_timer timer(ex);
  bool timed_out = false;
  timer.expires_after(timeout);
  timer.async_wait([&socket, &timed_out](const boost::system::error_code& ec) {
    if (ec) return;
    timed_out = true;
    boost::system::error_code ignored;
    socket.close(ignored);
  });
  boost::system::error_code ec;
  asio::local::stream_protocol::endpoint endpoint(host.socket);
  co_await socket.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
  HostResult<Reply> out = tl::unexpected(HostCallError{0, ""});
  if (ec) {
    out = tl::unexpected(HostCallError{0, "connect(" + host.socket + "): " + ec.message()});
  } else {
    http::Request req = http::make_request(method, target, body);
    auto res = co_await http::async_request(socket, std::move(req), 4 * 1024 * 1024);
    if (!res) {
      out = tl::unexpected(HostCallError{0, res.error().message});
    } else {
      nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
      if (j.is_discarded()) {
        out = tl::unexpected(HostCallError{0, "hostd answered " + std::to_string(res->status) +
                                                  " with a body that is not JSON"});
      } else {
        out = Reply{res->status, std::move(j)};
      }
    }
  }
  timer.cancel();
  if (timed_out) {
    out = tl::unexpected(HostCallError{0, std::string(bhttp::to_string(method)) + " " + target +
                                              " on " + host.name + ": timed out"});
  }
  co_return out;
}

asio::awaitable<HostResult<HostSession>> UnixHostClient::launch(const HostRecord& host,
                                                                const HostLaunchRequest& r) {
  nlohmann::json body = {{"user", r.user},     {"app_id", r.app_id}, {"command", r.command},
                         {"limits", r.limits}, {"width", r.width},   {"height", r.height},
                         {"idle_timeout_s", r.idle_timeout_s},
                         {"disconnect_timeout_s", r.disconnect_timeout_s}};
  if (r.isolation != "container") body["isolation"] = r.isolation;
  std::string target = "/v1/sessions";
  std::string text = body.dump();
  auto reply = co_await call(host, bhttp::verb::post, target, text, timeout_);
  if (!reply) co_return tl::unexpected(reply.error());
  if (reply->status != 201 && reply->status != 200) {
    co_return tl::unexpected(error_from_reply(reply->status, reply->body));
  }
  auto s = host_session_from_json(reply->body);
  if (!s) co_return tl::unexpected(HostCallError{0, "launch reply: " + s.error()});
  if (s->secret.empty()) co_return tl::unexpected(HostCallError{0, "launch reply: no secret"});
  if (s->user.empty()) s->user = r.user;
  if (s->app_id.empty()) s->app_id = r.app_id;
  if (s->state.empty()) s->state = "running";
  co_return *s;
}

asio::awaitable<HostResult<HostSession>> UnixHostClient::get(const HostRecord& host,
                                                             const std::string& id) {
  std::string target = "/v1/sessions/" + id;
  auto reply = co_await call(host, bhttp::verb::get, target, kNoBody, quick_timeout_);
  if (!reply) co_return tl::unexpected(reply.error());
  if (reply->status != 200) co_return tl::unexpected(error_from_reply(reply->status, reply->body));
  auto s = host_session_from_json(reply->body);
  if (!s) co_return tl::unexpected(HostCallError{0, s.error()});
  co_return *s;
}

asio::awaitable<HostResult<std::vector<HostSession>>> UnixHostClient::list(const HostRecord& host) {
  std::string target = "/v1/sessions";
  auto reply = co_await call(host, bhttp::verb::get, target, kNoBody, quick_timeout_);
  if (!reply) co_return tl::unexpected(reply.error());
  if (reply->status != 200) co_return tl::unexpected(error_from_reply(reply->status, reply->body));
  auto it = reply->body.find("sessions");
  if (it == reply->body.end() || !it->is_array()) {
    co_return tl::unexpected(HostCallError{0, "session list: no sessions array"});
  }
  std::vector<HostSession> out;
  for (const auto& j : *it) {
    auto s = host_session_from_json(j);
    if (!s) co_return tl::unexpected(HostCallError{0, s.error()});
    out.push_back(std::move(*s));
  }
  co_return out;
}

asio::awaitable<HostResult<HostSession>> UnixHostClient::logoff(const HostRecord& host,
                                                                const std::string& id) {
  std::string target = "/v1/sessions/" + id;
  auto reply = co_await call(host, bhttp::verb::delete_, target, kNoBody, timeout_);
  if (!reply) co_return tl::unexpected(reply.error());
  if (reply->status != 200) co_return tl::unexpected(error_from_reply(reply->status, reply->body));
  auto s = host_session_from_json(reply->body);
  if (!s) co_return tl::unexpected(HostCallError{0, s.error()});
  co_return *s;
}

asio::awaitable<HostResult<HostHealth>> UnixHostClient::health(const HostRecord& host) {
  std::string target = "/v1/health";
  auto reply = co_await call(host, bhttp::verb::get, target, kNoBody, quick_timeout_);
  if (!reply) co_return tl::unexpected(reply.error());
  if (reply->status != 200) co_return tl::unexpected(error_from_reply(reply->status, reply->body));
  HostHealth h;
  if (auto it = reply->body.find("sessions"); it != reply->body.end() && it->is_number_integer()) {
    h.sessions = it->get<int>();
  }
  h.cgroup = string_or_empty(reply->body, "cgroup");
  if (auto it = reply->body.find("isolation"); it != reply->body.end() && it->is_array()) {
    for (const auto& i : *it) {
      if (!i.is_string() || (i != "container" && i != "vm")) continue;
      h.isolation += (h.isolation.empty() ? "" : ",") + i.get<std::string>();
    }
  }
  if (auto it = reply->body.find("vm"); it != reply->body.end() && it->is_object()) {
    h.vm_capacity = it->value("capacity", 0);
    h.vm_sessions = it->value("sessions", 0);
  }
  co_return h;
}

asio::awaitable<HostResult<nlohmann::json>> UnixHostClient::set_user_limits(
    const HostRecord& host, const std::string& user, const nlohmann::json& limits) {
  // The broker's user names are [A-Za-z0-9._@-] (is_valid_user_name): nothing to escape.
  std::string target = "/v1/users/" + user + "/limits";
  std::string text = limits.dump();
  auto reply = co_await call(host, bhttp::verb::put, target, text, quick_timeout_);
  if (!reply) co_return tl::unexpected(reply.error());
  if (reply->status != 200) co_return tl::unexpected(error_from_reply(reply->status, reply->body));
  auto it = reply->body.find("limits");
  if (it == reply->body.end() || !it->is_object()) {
    co_return tl::unexpected(HostCallError{0, "limits reply: no limits object"});
  }
  co_return *it;
}

asio::awaitable<HostResult<nlohmann::json>> UnixHostClient::set_user_timeouts(
    const HostRecord& host, const std::string& user, const nlohmann::json& timeouts) {
  std::string target = "/v1/users/" + user + "/timeouts";  // user names need no escaping (above)
  std::string text = timeouts.dump();
  auto reply = co_await call(host, bhttp::verb::put, target, text, quick_timeout_);
  if (!reply) co_return tl::unexpected(reply.error());
  if (reply->status != 200) co_return tl::unexpected(error_from_reply(reply->status, reply->body));
  co_return reply->body;
}

}  // namespace appvirt::broker
