// The internal API: the gateway redeems launch tokens and logs plain RDP clients on; hosts
// register and report their load. Each caller class has its own shared secret (Bearer token).
#include "broker/api.h"

namespace appvirt::broker {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using Response = http::Response;

namespace {

Response forbidden() {
  return http::error_response(bhttp::status::unauthorized, "missing or wrong internal API secret");
}

nlohmann::json endpoint_json(const SessionRecord& s) {
  nlohmann::json e = {{"unix", s.endpoint_unix}, {"tcp", nullptr}};
  if (!s.endpoint_tcp.empty()) e["tcp"] = s.endpoint_tcp;
  return e;
}

struct LogonRequest {
  std::string user;
  std::string password;
  std::string address;
  std::string app;  // empty: the user's default app
};

std::optional<Response> read_logon(const nlohmann::json& body, LogonRequest* out) {
  if (auto refused = api::only_fields(body, {"username", "password", "app", "client_address"})) {
    return refused;
  }
  auto str = [&](const char* k) { return body.contains(k) && body[k].is_string(); };
  if (!str("username") || !str("password") || !str("client_address") ||
      (body.contains("app") && !body["app"].is_null() && !str("app"))) {
    return http::error_response(bhttp::status::bad_request,
                                "username, password, client_address: required strings; app: string");
  }
  out->user = body["username"].get<std::string>();
  out->password = body["password"].get<std::string>();
  out->address = api::normalise_address(body["client_address"].get<std::string>());
  out->app = str("app") ? body["app"].get<std::string>() : "";
  if (out->address.empty() || out->address.size() > 64) {
    return http::error_response(bhttp::status::bad_request, "client_address: 1-64 characters");
  }
  return std::nullopt;
}

}  // namespace

BrokerApi::Awaitable BrokerApi::redeem(const Request& req, const PathParams&, const std::string&) {
  if (!api::bearer_matches(req, secrets_.gateway)) co_return forbidden();
  nlohmann::json body;
  if (auto refused = api::parse_body(req, &body, false)) co_return std::move(*refused);
  if (auto refused = api::only_fields(body, {"token"})) co_return std::move(*refused);
  if (!body.contains("token") || !body["token"].is_string()) {
    co_return http::error_response(bhttp::status::bad_request, "token: required string");
  }
  std::string token = body["token"].get<std::string>();
  SessionOutcome o = co_await svc_.redeem(std::move(token));
  if (o.status != 200) co_return http::error_response(static_cast<bhttp::status>(o.status), o.error);
  co_return http::json_response(bhttp::status::ok, {{"session_id", o.session.id},
                                                    {"user", o.session.user},
                                                    {"app_id", o.session.app_id},
                                                    {"host", o.session.host},
                                                    {"endpoint", endpoint_json(o.session)},
                                                    {"secret", o.session.secret}});
}

BrokerApi::Awaitable BrokerApi::gateway_logon(const Request& req, const PathParams&,
                                              const std::string&) {
  if (!api::bearer_matches(req, secrets_.gateway)) co_return forbidden();
  nlohmann::json body;
  if (auto refused = api::parse_body(req, &body, false)) co_return std::move(*refused);
  LogonRequest logon;
  if (auto refused = read_logon(body, &logon)) co_return std::move(*refused);
  body.clear();
  std::string channel = "gateway";
  LoginOutcome lo = co_await svc_.login(logon.user, std::move(logon.password), logon.address, channel);
  if (lo.status != LoginOutcome::Status::ok) co_return api::login_refused(lo);
  std::string app = logon.app;
  if (app.empty()) {
    // No program asked for: the user's first entitled app is their default.
    auto apps = svc_.entitled_apps(lo.user, lo.groups);
    if (apps.empty()) co_return http::error_response(bhttp::status::forbidden, "no entitled apps");
    app = apps.front()->id;
  }
  std::string source = "gateway:" + logon.address;
  LaunchOutcome o = co_await svc_.launch(lo.user, lo.groups, app, 0, 0, source);
  if (o.status != 200) co_return http::error_response(static_cast<bhttp::status>(o.status), o.error);
  co_return http::json_response(bhttp::status::ok,
                                {{"token", o.token},
                                 {"routing_token", "Cookie: msts=" + o.token},
                                 {"session_id", o.session.id},
                                 {"user", o.session.user},
                                 {"app_id", o.session.app_id},
                                 {"reused", o.reused},
                                 {"expires_in", svc_.config().launch_token_ttl.count()}});
}

BrokerApi::Awaitable BrokerApi::host_register(const Request& req, const PathParams&,
                                              const std::string&) {
  if (!api::bearer_matches(req, secrets_.host)) co_return forbidden();
  nlohmann::json body;
  if (auto refused = api::parse_body(req, &body, false)) co_return std::move(*refused);
  auto r = svc_.register_host(body);
  if (!r) co_return http::error_response(bhttp::status::bad_request, r.error().message);
  co_return http::json_response(bhttp::status::ok, *r);
}

BrokerApi::Awaitable BrokerApi::host_load(const Request& req, const PathParams& p,
                                          const std::string&) {
  if (!api::bearer_matches(req, secrets_.host)) co_return forbidden();
  nlohmann::json body;
  if (auto refused = api::parse_body(req, &body, false)) co_return std::move(*refused);
  auto r = svc_.report_load(p.at("name"), body);
  if (!r) {
    bool unknown = r.error().message.find("not registered") != std::string::npos;
    co_return http::error_response(unknown ? bhttp::status::not_found : bhttp::status::bad_request,
                                   r.error().message);
  }
  co_return http::json_response(bhttp::status::ok, {{"ok", true}});
}

}  // namespace appvirt::broker
