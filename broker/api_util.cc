#include <ctime>

#include "broker/api.h"
#include "broker/crypto.h"
#include "broker/static_files.h"

namespace appvirt::broker {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

namespace api {

std::string cookie_value(const http::Request& req, std::string_view name) {
  for (auto it = req.find(bhttp::field::cookie); it != req.end() && it->name() == bhttp::field::cookie;
       ++it) {
    std::string_view header(it->value().data(), it->value().size());
    while (!header.empty()) {
      std::size_t end = header.find(';');
      std::string_view pair = header.substr(0, end);
      header = end == std::string_view::npos ? std::string_view() : header.substr(end + 1);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      std::size_t eq = pair.find('=');
      if (eq == std::string_view::npos) continue;
      if (pair.substr(0, eq) == name) return std::string(pair.substr(eq + 1));
    }
  }
  return {};
}

std::optional<http::Response> parse_body(const http::Request& req, nlohmann::json* out,
                                         bool allow_empty) {
  if (req.body().empty() && allow_empty) {
    *out = nlohmann::json::object();
    return std::nullopt;
  }
  // Only application/json: a cross-site form post cannot send it without a CORS preflight.
  std::string_view type(req[bhttp::field::content_type].data(), req[bhttp::field::content_type].size());
  if (type.substr(0, type.find(';')) != "application/json") {
    return http::error_response(bhttp::status::unsupported_media_type,
                                "Content-Type must be application/json");
  }
  auto j = http::parse_json_object(req.body());
  if (!j) return http::error_response(bhttp::status::bad_request, j.error().message);
  *out = std::move(*j);
  return std::nullopt;
}

std::optional<http::Response> only_fields(const nlohmann::json& body,
                                          std::initializer_list<const char*> known) {
  for (const auto& [key, value] : body.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) return http::error_response(bhttp::status::bad_request, key + ": unknown field");
  }
  return std::nullopt;
}

bool bearer_matches(const http::Request& req, const std::string& secret) {
  if (secret.empty()) return false;
  std::string_view auth(req[bhttp::field::authorization].data(),
                        req[bhttp::field::authorization].size());
  if (auth.substr(0, 7) != "Bearer ") return false;
  // Hashing first makes the comparison independent of where (and whether) lengths differ.
  return constant_time_equal(sha256_hex(auth.substr(7)), sha256_hex(secret));
}

void decorate(http::Response& res) {
  if (res[bhttp::field::cache_control].empty()) res.set(bhttp::field::cache_control, "no-store");
  std::string csp(res["Content-Security-Policy"]);  // a copy: set() below replaces the field
  if (csp.empty()) {
    // .rdp files and metrics get the portal's policy; JSON needs no content at all.
    csp = res[bhttp::field::content_type] == "application/json"
              ? "default-src 'none'; frame-ancestors 'none'"
              : kPortalCsp;
  }
  add_security_headers(res, csp);
}

std::string iso_time(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json session_json(const SessionRecord& s, const Catalog& catalog) {
  const App* app = catalog.find(s.app_id);
  nlohmann::json j = {{"session_id", s.id},
                      {"user", s.user},
                      {"app_id", s.app_id},
                      {"app_name", app ? app->name : s.app_id},
                      {"host", s.host},
                      {"state", s.state},
                      {"created_at", iso_time(s.created_at)},
                      {"reconnectable", s.live() && !s.secret.empty()}};
  j["ended_at"] = s.ended_at ? nlohmann::json(iso_time(s.ended_at)) : nlohmann::json();
  j["end_reason"] = s.end_reason.empty() ? nlohmann::json() : nlohmann::json(s.end_reason);
  return j;
}

http::Response login_refused(const LoginOutcome& o) {
  using S = LoginOutcome::Status;
  if (o.status == S::locked) {
    http::Response res = http::error_response(bhttp::status::too_many_requests,
                                        "too many failed logins; try again later");
    res.set(bhttp::field::retry_after, std::to_string(o.retry_after.count()));
    return res;
  }
  if (o.status == S::error) {
    return http::error_response(bhttp::status::service_unavailable,
                                "authentication service unavailable");
  }
  // The same answer for an unknown user and a wrong password.
  return http::error_response(bhttp::status::unauthorized, "invalid user name or password");
}

bool query_flag(const http::Request& req, std::string_view name) {
  std::string_view target(req.target().data(), req.target().size());
  std::size_t q = target.find('?');
  if (q == std::string_view::npos) return false;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    std::string_view pair = query.substr(0, query.find('&'));
    query = pair.size() < query.size() ? query.substr(pair.size() + 1) : std::string_view();
    std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    std::string_view value = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
    return value == "true" || value == "1";
  }
  return false;
}

std::string normalise_address(std::string address) {
  if (address.rfind("::ffff:", 0) == 0 && address.find('.') != std::string::npos) {
    address.erase(0, 7);
  }
  return address;
}

}  // namespace api

void BrokerApi::add(http::Router& r, bhttp::verb verb, const char* path, Method m,
                    const std::string& peer) {
  r.add(verb, path,
        [this, m, peer](const Request& req, const PathParams& p) -> asio::awaitable<Response> {
          // Security headers: api::decorate, on the server, for every response (broker.cc).
          co_return co_await (this->*m)(req, p, peer);
        });
}

http::Router BrokerApi::router_for(std::string peer) {
  using V = bhttp::verb;
  peer = api::normalise_address(std::move(peer));
  http::Router r;
  add(r, V::post, "/api/v1/login", &BrokerApi::login, peer);
  add(r, V::post, "/api/v1/logout", &BrokerApi::logout, peer);
  add(r, V::get, "/api/v1/me", &BrokerApi::me, peer);
  add(r, V::get, "/api/v1/apps", &BrokerApi::list_apps, peer);
  add(r, V::post, "/api/v1/apps/{id}/launch", &BrokerApi::launch, peer);
  add(r, V::get, "/api/v1/sessions", &BrokerApi::list_sessions, peer);
  add(r, V::delete_, "/api/v1/sessions/{id}", &BrokerApi::delete_session, peer);
  add(r, V::get, "/api/v1/admin/sessions", &BrokerApi::admin_sessions, peer);
  add(r, V::delete_, "/api/v1/admin/sessions/{id}", &BrokerApi::admin_delete_session, peer);
  add(r, V::get, "/api/v1/admin/hosts", &BrokerApi::admin_hosts, peer);
  add(r, V::get, "/api/v1/admin/audit", &BrokerApi::admin_audit, peer);
  add(r, V::get, "/api/v1/admin/policies", &BrokerApi::admin_policy_get, peer);
  add(r, V::put, "/api/v1/admin/policies", &BrokerApi::admin_policy_put, peer);
  add(r, V::get, "/api/v1/admin/policies/history", &BrokerApi::admin_policy_history, peer);
  add(r, V::get, "/api/v1/admin/policies/versions/{n}", &BrokerApi::admin_policy_version, peer);
  add(r, V::post, "/api/v1/admin/policies/rollback", &BrokerApi::admin_policy_rollback, peer);
  add(r, V::get, "/api/v1/admin/policies/resolve", &BrokerApi::admin_policy_resolve, peer);
  add(r, V::get, "/metrics", &BrokerApi::metrics, peer);
  add(r, V::get, "/healthz", &BrokerApi::healthz, peer);
  add(r, V::post, "/internal/v1/tokens/redeem", &BrokerApi::redeem, peer);
  add(r, V::post, "/internal/v1/logon", &BrokerApi::gateway_logon, peer);
  add(r, V::post, "/internal/v1/hosts/register", &BrokerApi::host_register, peer);
  add(r, V::post, "/internal/v1/hosts/{name}/load", &BrokerApi::host_load, peer);
  return r;
}

WebSession* BrokerApi::session_of(const Request& req) {
  std::string cookie = api::cookie_value(req, kSessionCookie);
  if (cookie.empty()) return nullptr;
  return web_.find(cookie, std::chrono::steady_clock::now());
}

std::optional<http::Response> BrokerApi::require_session(const Request& req, bool csrf, bool admin,
                                                         WebSession** out) {
  WebSession* s = session_of(req);
  if (!s) return http::error_response(bhttp::status::unauthorized, "not signed in");
  if (csrf) {
    std::string_view got(req["X-CSRF-Token"].data(), req["X-CSRF-Token"].size());
    if (got.empty() || !constant_time_equal(got, s->csrf_token)) {
      return http::error_response(bhttp::status::forbidden, "missing or wrong X-CSRF-Token header");
    }
  }
  if (admin && !s->admin) {
    return http::error_response(bhttp::status::forbidden, "admin rights required");
  }
  *out = s;
  return std::nullopt;
}

}  // namespace appvirt::broker
