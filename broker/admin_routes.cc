// The admin API (members of the admin group), metrics and health.
#include "broker/api.h"

namespace appvirt::broker {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using Response = http::Response;

BrokerApi::Awaitable BrokerApi::admin_sessions(const Request& req, const PathParams&,
                                               const std::string&) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, false, true, &s)) co_return std::move(*refused);
  auto list = svc_.sessions("", api::query_flag(req, "include_ended"));
  if (!list) co_return http::error_response(bhttp::status::internal_server_error, "session directory");
  nlohmann::json out = nlohmann::json::array();
  for (const auto& rec : *list) {
    nlohmann::json j = api::session_json(rec, svc_.catalog());
    j["resources"] = rec.live() ? svc_.session_resources(rec.id) : nlohmann::json();
    out.push_back(std::move(j));
  }
  co_return http::json_response(bhttp::status::ok, {{"sessions", out}});
}

BrokerApi::Awaitable BrokerApi::admin_delete_session(const Request& req, const PathParams& p,
                                                     const std::string& peer) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, true, true, &s)) co_return std::move(*refused);
  std::string admin = s->user;
  std::string id = p.at("id");
  std::string owner;  // any user's session
  std::string source = "admin:" + admin + "@" + peer;
  SessionOutcome o = co_await svc_.logoff(id, owner, source);
  if (o.status != 200) co_return http::error_response(static_cast<bhttp::status>(o.status), o.error);
  svc_.audit("admin_logoff", o.session.user, source, "session=" + id);
  co_return http::json_response(bhttp::status::ok, api::session_json(o.session, svc_.catalog()));
}

BrokerApi::Awaitable BrokerApi::admin_hosts(const Request& req, const PathParams&,
                                            const std::string&) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, false, true, &s)) co_return std::move(*refused);
  auto now = std::chrono::steady_clock::now();
  nlohmann::json out = nlohmann::json::array();
  for (const HostState* h : svc_.hosts().all()) {
    nlohmann::json j = {{"name", h->record.name},
                        {"configured", h->record.configured},
                        {"socket", h->record.socket},
                        {"capacity", h->record.capacity},
                        {"isolation", h->record.isolation},
                        {"up", h->up},
                        {"sessions", h->reported_sessions}};
    j["last_error"] = h->last_error.empty() ? nlohmann::json() : nlohmann::json(h->last_error);
    j["seconds_since_seen"] =
        h->last_seen == std::chrono::steady_clock::time_point{}
            ? nlohmann::json()
            : nlohmann::json(std::chrono::duration_cast<std::chrono::seconds>(now - h->last_seen).count());
    j["load"] = nlohmann::json::parse(h->record.load_json, nullptr, false);
    if (j["load"].is_discarded()) j["load"] = nlohmann::json::object();
    out.push_back(std::move(j));
  }
  co_return http::json_response(bhttp::status::ok, {{"hosts", out}});
}

BrokerApi::Awaitable BrokerApi::admin_audit(const Request& req, const PathParams&,
                                            const std::string&) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, false, true, &s)) co_return std::move(*refused);
  auto events = svc_.recent_audit(200);
  if (!events) co_return http::error_response(bhttp::status::internal_server_error, "audit log");
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : *events) {
    out.push_back({{"id", e.id}, {"at", api::iso_time(e.at)}, {"event", e.event},
                   {"user", e.user}, {"source", e.source}, {"detail", e.detail}});
  }
  co_return http::json_response(bhttp::status::ok, {{"events", out}});
}

BrokerApi::Awaitable BrokerApi::metrics(const Request&, const PathParams&, const std::string&) {
  svc_.update_gauges();
  svc_.metrics().set("appvirt_broker_web_sessions", {}, static_cast<double>(web_.size()));
  Response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "text/plain; version=0.0.4");
  res.body() = svc_.metrics().render();
  co_return res;
}

BrokerApi::Awaitable BrokerApi::healthz(const Request&, const PathParams&, const std::string&) {
  int up = 0;
  for (const HostState* h : svc_.hosts().all()) up += h->up ? 1 : 0;
  co_return http::json_response(bhttp::status::ok, {{"ok", true}, {"hosts_up", up}});
}

}  // namespace appvirt::broker
