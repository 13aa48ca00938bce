#include "session-host/hostd/control_api.h"

#include "common/json_body.h"
#include "common/log.h"

namespace appvirt::hostd {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using http::PathParams;
using http::Request;
using http::Response;

namespace {

Result<std::optional<int>> optional_dimension(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::optional<int>();
  if (!j[key].is_number_integer()) return fail(std::string(key) + ": must be an integer");
  int v = j[key].get<int>();
  if (v < 64 || v > 8192) return fail(std::string(key) + ": must be between 64 and 8192");
  return std::optional<int>(v);
}

// Seconds, 0 (or absent/null) = none; at most a year.
Result<int64_t> optional_timeout(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return int64_t{0};
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0 ||
      j[key].get<int64_t>() > 366 * 86400) {
    return fail(std::string(key) + ": must be an integer number of seconds, 0..31622400");
  }
  return j[key].get<int64_t>();
}

// idle_timeout_s and disconnect_timeout_s of a launch or a timeouts change.
Result<SessionTimeouts> timeouts_of(const nlohmann::json& j) {
  auto idle = optional_timeout(j, "idle_timeout_s");
  if (!idle) return tl::unexpected(idle.error());
  auto disconnect = optional_timeout(j, "disconnect_timeout_s");
  if (!disconnect) return tl::unexpected(disconnect.error());
  return SessionTimeouts{*idle, *disconnect};
}

Response error_for(const ApiError& e) {
  return http::error_response(static_cast<bhttp::status>(e.status), e.message);
}

nlohmann::json launch_reply(const LaunchResult& r) {
  nlohmann::json endpoint = {{"unix", r.session.endpoint_unix}, {"tcp", nullptr}};
  if (r.session.endpoint_unix.empty()) endpoint["unix"] = nullptr;  // VM sessions: TCP only
  if (r.session.tcp_port > 0) endpoint["tcp"] = "127.0.0.1:" + std::to_string(r.session.tcp_port);
  return {{"session_id", r.session.id}, {"endpoint", endpoint}, {"secret", r.secret},
          {"display", r.session.display}, {"state", to_string(r.session.state)},
          {"isolation", r.session.isolation}};
}

}  // namespace

Result<SessionTimeouts> timeouts_from_json(const nlohmann::json& j) {
  for (const auto& [key, v] : j.items()) {
    if (key != "idle_timeout_s" && key != "disconnect_timeout_s") return fail(key + ": unknown field");
  }
  return timeouts_of(j);
}

Result<LaunchRequest> launch_request_from_json(const nlohmann::json& j) {
  static const std::set<std::string> known = {"user",  "app_id", "command",
                                              "limits", "width", "height",
                                              "idle_timeout_s", "disconnect_timeout_s",
                                              "isolation"};
  for (const auto& [key, v] : j.items()) {
    if (!known.count(key)) return fail(key + ": unknown field");
  }
  LaunchRequest r;
  if (!j.contains("user") || !j["user"].is_string()) return fail("user: required string");
  r.user = j["user"].get<std::string>();
  if (!j.contains("app_id") || !j["app_id"].is_string() || j["app_id"].get<std::string>().empty()) {
    return fail("app_id: required non-empty string");
  }
  r.app_id = j["app_id"].get<std::string>();
  const auto& cmd = j.contains("command") ? j["command"] : nlohmann::json();
  if (!cmd.is_array() || cmd.empty()) return fail("command: required non-empty array of strings");
  for (const auto& a : cmd) {
    if (!a.is_string()) return fail("command: required non-empty array of strings");
    r.command.push_back(a.get<std::string>());
  }
  if (r.command[0].empty() || r.command[0][0] != '/') {
    return fail("command: the program must be an absolute path");
  }
  if (j.contains("limits") && !j["limits"].is_null()) {
    auto l = limits_from_json(j["limits"]);
    if (!l) return tl::unexpected(l.error());
    r.limits = *l;
  }
  auto w = optional_dimension(j, "width");
  if (!w) return tl::unexpected(w.error());
  auto h = optional_dimension(j, "height");
  if (!h) return tl::unexpected(h.error());
  r.width = *w;
  r.height = *h;
  auto timeouts = timeouts_of(j);
  if (!timeouts) return tl::unexpected(timeouts.error());
  r.idle_timeout_s = timeouts->idle_s;
  r.disconnect_timeout_s = timeouts->disconnect_s;
  if (j.contains("isolation") && !j["isolation"].is_null()) {
    if (!j["isolation"].is_string() ||
        (j["isolation"] != "container" && j["isolation"] != "vm")) {
      return fail("isolation: must be \"container\" or \"vm\"");
    }
    r.isolation = j["isolation"].get<std::string>();
  }
  return r;
}

http::Router make_control_router(SessionManager& sm) {
  http::Router r;
  r.add(bhttp::verb::post, "/v1/sessions",
        [&sm](const Request& req, const PathParams&) -> asio::awaitable<Response> {
          auto body = http::parse_json_object(req.body());
          if (!body) co_return http::error_response(bhttp::status::bad_request, body.error().message);
          auto launch = launch_request_from_json(*body);
          if (!launch) co_return http::error_response(bhttp::status::bad_request, launch.error().message);
          LaunchRequest lr = std::move(*launch);
          auto result = co_await sm.launch(std::move(lr));
          if (!result) co_return error_for(result.error());
          co_return http::json_response(bhttp::status::created, launch_reply(*result));
        });
  r.add(bhttp::verb::get, "/v1/sessions",
        [&sm](const Request&, const PathParams&) -> asio::awaitable<Response> {
          nlohmann::json list = nlohmann::json::array();
          for (const auto& s : sm.list()) list.push_back(sm.describe(s));
          co_return http::json_response(bhttp::status::ok, {{"sessions", list}});
        });
  r.add(bhttp::verb::get, "/v1/sessions/{id}",
        [&sm](const Request&, const PathParams& p) -> asio::awaitable<Response> {
          auto s = sm.get(p.at("id"));
          if (!s) co_return error_for(s.error());
          co_return http::json_response(bhttp::status::ok, sm.describe(*s));
        });
  r.add(bhttp::verb::delete_, "/v1/sessions/{id}",
        [&sm](const Request&, const PathParams& p) -> asio::awaitable<Response> {
          auto s = sm.logoff(p.at("id"));
          if (!s) co_return error_for(s.error());
          co_return http::json_response(bhttp::status::ok, sm.describe(*s));
        });
  r.add(bhttp::verb::put, "/v1/users/{user}/limits",
        [&sm](const Request& req, const PathParams& p) -> asio::awaitable<Response> {
          auto body = http::parse_json_object(req.body());
          if (!body) co_return http::error_response(bhttp::status::bad_request, body.error().message);
          auto limits = limits_from_json(*body);
          if (!limits) co_return http::error_response(bhttp::status::bad_request, limits.error().message);
          auto applied = sm.set_user_limits(p.at("user"), *limits);
          if (!applied) co_return error_for(applied.error());
          co_return http::json_response(bhttp::status::ok,
                                        {{"user", p.at("user")}, {"limits", limits_to_json(*applied)}});
        });
  r.add(bhttp::verb::put, "/v1/users/{user}/timeouts",
        [&sm](const Request& req, const PathParams& p) -> asio::awaitable<Response> {
          auto body = http::parse_json_object(req.body());
          if (!body) co_return http::error_response(bhttp::status::bad_request, body.error().message);
          auto t = timeouts_from_json(*body);
          if (!t) co_return http::error_response(bhttp::status::bad_request, t.error().message);
          auto changed = sm.set_user_timeouts(p.at("user"), *t);
          if (!changed) co_return error_for(changed.error());
          co_return http::json_response(bhttp::status::ok,
                                        {{"user", p.at("user")},
                                         {"idle_timeout_s", t->idle_s},
                                         {"disconnect_timeout_s", t->disconnect_s},
                                         {"sessions", *changed}});
        });
  r.add(bhttp::verb::get, "/v1/health",
        [&sm](const Request&, const PathParams&) -> asio::awaitable<Response> {
          nlohmann::json health = {{"ok", true},
                                   {"sessions", sm.active_sessions()},
                                   {"cgroup", sm.cgroup_version()},
                                   {"isolation", sm.isolation_offered()}};
          if (auto vm = sm.vm_health(); !vm.is_null()) health["vm"] = vm;
          co_return http::json_response(bhttp::status::ok, health);
        });
  return r;
}

}  // namespace appvirt::hostd
