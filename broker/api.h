#pragma once
// The broker's HTTP API on top of BrokerService: the portal API (/api/v1, cookie session + CSRF),
// the admin API (/api/v1/admin, members of the admin group), the internal API for the gateway
// and the hosts (/internal/v1, a shared secret each), /metrics and /healthz. The HTTP server
// gives handlers no peer address, so the router is built per connection with the peer bound in.
#include <string>

#include "broker/broker_service.h"
#include "broker/web_sessions.h"
#include "common/http_server.h"

namespace appvirt::broker {

inline constexpr const char* kSessionCookie = "__Host-appvirt_session";

struct ApiSecrets {
  std::string gateway;  // empty = gateway API disabled
  std::string host;     // empty = host API disabled
};

class BrokerApi {
 public:
  BrokerApi(BrokerService& service, WebSessionTable& web, ApiSecrets secrets)
      : svc_(service), web_(web), secrets_(std::move(secrets)) {}

  // Every route, with `peer` (the client's address) as the source of logins and audit events.
  http::Router router_for(std::string peer);

  using Request = http::Request;
  using Response = http::Response;
  using PathParams = http::PathParams;
  using Awaitable = boost::asio::awaitable<Response>;

 private:
  using Method = Awaitable (BrokerApi::*)(const Request&, const PathParams&, const std::string&);
  void add(http::Router& r, http::bhttp::verb verb, const char* path, Method m,
           const std::string& peer);

  // Portal (portal_routes.cc).
  Awaitable login(const Request&, const PathParams&, const std::string& peer);
  Awaitable logout(const Request&, const PathParams&, const std::string& peer);
  Awaitable me(const Request&, const PathParams&, const std::string& peer);
  Awaitable list_apps(const Request&, const PathParams&, const std::string& peer);
  Awaitable launch(const Request&, const PathParams&, const std::string& peer);
  Awaitable list_sessions(const Request&, const PathParams&, const std::string& peer);
  Awaitable delete_session(const Request&, const PathParams&, const std::string& peer);
  // Admin (admin_routes.cc).
  Awaitable admin_sessions(const Request&, const PathParams&, const std::string& peer);
  Awaitable admin_delete_session(const Request&, const PathParams&, const std::string& peer);
  Awaitable admin_hosts(const Request&, const PathParams&, const std::string& peer);
  Awaitable admin_audit(const Request&, const PathParams&, const std::string& peer);
  // Policy versions (admin_policy_routes.cc).
  Awaitable admin_policy_get(const Request&, const PathParams&, const std::string& peer);
  Awaitable admin_policy_put(const Request&, const PathParams&, const std::string& peer);
  Awaitable admin_policy_history(const Request&, const PathParams&, const std::string& peer);
  Awaitable admin_policy_version(const Request&, const PathParams&, const std::string& peer);
  Awaitable admin_policy_rollback(const Request&, const PathParams&, const std::string& peer);
  Awaitable admin_policy_resolve(const Request&, const PathParams&, const std::string& peer);
  Awaitable metrics(const Request&, const PathParams&, const std::string& peer);
  Awaitable healthz(const Request&, const PathParams&, const std::string& peer);
  // Internal (internal_routes.cc).
  Awaitable redeem(const Request&, const PathParams&, const std::string& peer);
  Awaitable gateway_logon(const Request&, const PathParams&, const std::string& peer);
  Awaitable host_register(const Request&, const PathParams&, const std::string& peer);
  Awaitable host_load(const Request&, const PathParams&, const std::string& peer);

  // The signed-in session of the request, or null. With csrf, also checks X-CSRF-Token and puts
  // the reason for a refusal in *error.
  WebSession* session_of(const Request& req);
  std::optional<Response> require_session(const Request& req, bool csrf, bool admin,
                                          WebSession** out);

  BrokerService& svc_;
  WebSessionTable& web_;
  ApiSecrets secrets_;
};

// Helpers shared by the route files (api_util.cc); exposed for unit tests.
namespace api {
// The value of one cookie from the Cookie header, or empty.
std::string cookie_value(const http::Request& req, std::string_view name);
// Parses a JSON object body; a refusal (400, 415) comes back as a response.
std::optional<http::Response> parse_body(const http::Request& req, nlohmann::json* out,
                                         bool allow_empty);
// Rejects fields other than `known` with a 400.
std::optional<http::Response> only_fields(const nlohmann::json& body,
                                          std::initializer_list<const char*> known);
// True when the Authorization header is "Bearer <secret>" (constant time).
bool bearer_matches(const http::Request& req, const std::string& secret);
// The broker's response decorator (http::ResponseDecorator, installed on its HTTP server): every
// response it sends — API answers, portal files, and the server's own errors before routing
// (408, 413, 431, 400, 503) — gets CSP, X-Frame-Options, nosniff, Referrer-Policy and HSTS.
// A CSP or Cache-Control the response already has (portal files) is kept; otherwise JSON gets
// the API's CSP, anything else the portal's, and Cache-Control is no-store.
void decorate(http::Response& res);
nlohmann::json session_json(const SessionRecord& s, const Catalog& catalog);
std::string iso_time(int64_t ms);
// The refusal for a login that did not succeed: 401 (same for unknown user and bad password),
// 429 with Retry-After, or 503.
http::Response login_refused(const LoginOutcome& o);
// True when the query string has name=true or name=1.
bool query_flag(const http::Request& req, std::string_view name);
// Normalises an address for keys and logs ("::ffff:10.0.0.1" → "10.0.0.1").
std::string normalise_address(std::string address);
}  // namespace api

}  // namespace appvirt::broker
