// The portal API: sign in and out, entitled apps, launches (.rdp file), own sessions.
#include "broker/api.h"
#include "broker/rdp_file.h"

namespace appvirt::broker {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using Response = http::Response;

namespace {

Response launch_refused(const LaunchOutcome& o) {
  Response res = http::error_response(static_cast<bhttp::status>(o.status), o.error);
  if (o.status == 503) res.set(bhttp::field::retry_after, "10");
  return res;
}

std::optional<Response> read_size(const nlohmann::json& body, const char* key, int* out) {
  if (!body.contains(key) || body[key].is_null()) return std::nullopt;
  if (!body[key].is_number_integer() || body[key].get<int64_t>() < 64 ||
      body[key].get<int64_t>() > 8192) {
    return http::error_response(bhttp::status::bad_request,
                                std::string(key) + ": must be an integer between 64 and 8192");
  }
  *out = body[key].get<int>();
  return std::nullopt;
}

bool wants_json(const http::Request& req) {
  std::string_view accept(req[bhttp::field::accept].data(), req[bhttp::field::accept].size());
  return accept.find("application/json") != std::string_view::npos &&
         accept.find("application/x-rdp") == std::string_view::npos;
}

}  // namespace

BrokerApi::Awaitable BrokerApi::login(const Request& req, const PathParams&,
                                      const std::string& peer) {
  nlohmann::json body;
  if (auto refused = api::parse_body(req, &body, false)) co_return std::move(*refused);
  if (auto refused = api::only_fields(body, {"username", "password"})) co_return std::move(*refused);
  if (!body.contains("username") || !body["username"].is_string() ||
      !body.contains("password") || !body["password"].is_string()) {
    co_return http::error_response(bhttp::status::bad_request,
                                   "username and password: required strings");
  }
  std::string user = body["username"].get<std::string>();
  std::string password = body["password"].get<std::string>();
  body.clear();
  if (password.size() > 1024) co_return http::error_response(bhttp::status::bad_request, "password: too long");
  std::string channel = "portal";
  LoginOutcome o = co_await svc_.login(user, std::move(password), peer, channel);
  if (o.status != LoginOutcome::Status::ok) co_return api::login_refused(o);
  WebSession ws;
  ws.user = o.user;
  ws.groups = o.groups;
  ws.admin = o.admin;
  ws.address = peer;
  auto created = web_.create(std::move(ws), std::chrono::steady_clock::now());
  if (!created) co_return http::error_response(bhttp::status::internal_server_error, "session");
  const WebSession& s = *created->session;
  Response res = http::json_response(
      bhttp::status::ok, {{"user", s.user},
                          {"admin", s.admin},
                          {"csrf_token", s.csrf_token},
                          {"expires_in", web_.ttl().count()}});
  res.set(bhttp::field::set_cookie, std::string(kSessionCookie) + "=" + created->cookie +
                                        "; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=" +
                                        std::to_string(web_.ttl().count()));
  co_return res;
}

BrokerApi::Awaitable BrokerApi::logout(const Request& req, const PathParams&,
                                       const std::string& peer) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, true, false, &s)) co_return std::move(*refused);
  svc_.audit("logout", s->user, peer, "");
  web_.remove(api::cookie_value(req, kSessionCookie));
  Response res = http::json_response(bhttp::status::ok, {{"ok", true}});
  res.set(bhttp::field::set_cookie, std::string(kSessionCookie) +
                                        "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
  co_return res;
}

BrokerApi::Awaitable BrokerApi::me(const Request& req, const PathParams&, const std::string&) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, false, false, &s)) co_return std::move(*refused);
  co_return http::json_response(bhttp::status::ok, {{"user", s->user},
                                                    {"admin", s->admin},
                                                    {"groups", s->groups},
                                                    {"csrf_token", s->csrf_token}});
}

BrokerApi::Awaitable BrokerApi::list_apps(const Request& req, const PathParams&,
                                          const std::string&) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, false, false, &s)) co_return std::move(*refused);
  nlohmann::json apps = nlohmann::json::array();
  for (const App* a : svc_.entitled_apps(s->user, s->groups)) {
    apps.push_back({{"id", a->id},
                    {"name", a->name},
                    {"icon", a->icon},
                    {"isolation", to_string(a->isolation)},
                    {"launch", "/api/v1/apps/" + a->id + "/launch"}});
  }
  co_return http::json_response(bhttp::status::ok, {{"apps", apps}});
}

BrokerApi::Awaitable BrokerApi::launch(const Request& req, const PathParams& p,
                                       const std::string& peer) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, true, false, &s)) co_return std::move(*refused);
  // Copies: the session entry may go away (logout, expiry) while the launch is awaited.
  std::string user = s->user;
  std::vector<std::string> groups = s->groups;
  nlohmann::json body;
  if (auto refused = api::parse_body(req, &body, true)) co_return std::move(*refused);
  if (auto refused = api::only_fields(body, {"width", "height"})) co_return std::move(*refused);
  int width = 0, height = 0;
  if (auto refused = read_size(body, "width", &width)) co_return std::move(*refused);
  if (auto refused = read_size(body, "height", &height)) co_return std::move(*refused);
  LaunchOutcome o = co_await svc_.launch(user, groups, p.at("id"), width, height, peer);
  if (o.status != 200) co_return launch_refused(o);
  const BrokerConfig& c = svc_.config();
  // The size the host was asked for (the policy may have capped it), else the request's.
  int w = o.width ? o.width : (width ? width : c.default_width);
  int h = o.height ? o.height : (height ? height : c.default_height);
  RdpFileParams rp{c.gateway_address, o.token, user, o.app->name, w, h};
  std::string file = render_rdp_file(rp);
  if (wants_json(req)) {
    co_return http::json_response(bhttp::status::ok,
                                  {{"session_id", o.session.id},
                                   {"reused", o.reused},
                                   {"token", o.token},
                                   {"expires_in", c.launch_token_ttl.count()},
                                   {"rdp_file", file}});
  }
  Response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "application/x-rdp");
  res.set(bhttp::field::content_disposition,
          "attachment; filename=\"" + rdp_file_name(o.app->id) + "\"");
  res.set("X-Appvirt-Session-Id", o.session.id);
  res.set("X-Appvirt-Reused", o.reused ? "true" : "false");
  res.body() = std::move(file);
  co_return res;
}

BrokerApi::Awaitable BrokerApi::list_sessions(const Request& req, const PathParams&,
                                              const std::string&) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, false, false, &s)) co_return std::move(*refused);
  auto list = svc_.sessions(s->user, api::query_flag(req, "include_ended"));
  if (!list) co_return http::error_response(bhttp::status::internal_server_error, "session directory");
  nlohmann::json out = nlohmann::json::array();
  for (const auto& rec : *list) out.push_back(api::session_json(rec, svc_.catalog()));
  co_return http::json_response(bhttp::status::ok, {{"sessions", out}});
}

BrokerApi::Awaitable BrokerApi::delete_session(const Request& req, const PathParams& p,
                                               const std::string& peer) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, true, false, &s)) co_return std::move(*refused);
  std::string user = s->user;
  SessionOutcome o = co_await svc_.logoff(p.at("id"), user, peer);
  if (o.status != 200) {
    co_return http::error_response(static_cast<bhttp::status>(o.status), o.error);
  }
  co_return http::json_response(bhttp::status::ok, api::session_json(o.session, svc_.catalog()));
}

}  // namespace appvirt::broker
