// The policy admin API (members of the admin group): the policy in force and its versions, edits
// validated with the policies library, rollbacks, and what a user resolves to. Every change is a
// new version, audited, and pushed live to the hosts running the users' sessions
// (BrokerService::push_policy_limits). The contract is docs/openapi.yaml and docs/policies.md.
#include <charconv>

#include "broker/api.h"
#include "policies/policy_json.h"
#include "policies/resolver.h"

namespace appvirt::broker {

namespace bhttp = boost::beast::http;
using Response = http::Response;

namespace {

constexpr int kHistoryLimit = 1000;
constexpr std::size_t kMaxComment = 1024;

nlohmann::json version_json(const PolicyVersion& v) {
  nlohmann::json policy = nlohmann::json::parse(v.policy_json, nullptr, false);
  if (policy.is_discarded()) policy = nlohmann::json::object();
  return {{"version", v.version},
          {"author", v.author},
          {"created_at", api::iso_time(v.created_at)},
          {"comment", v.comment},
          {"policy", std::move(policy)}};
}

// "users.alice" → "user:alice", "groups.staff" → "group:staff", "defaults"/"builtin" →
// "default", and each part of a tie ("groups.a & groups.b") alike. Names that TOML quotes
// (users."john.doe") are unquoted: the API speaks names, not TOML keys.
std::string api_source(const std::string& source) {
  auto unquote = [](std::string_view name) {
    if (name.size() < 2 || name.front() != '"' || name.back() != '"') return std::string(name);
    std::string out;
    for (size_t i = 1; i + 1 < name.size(); ++i) {
      if (name[i] == '\\' && i + 2 < name.size()) ++i;
      out += name[i];
    }
    return out;
  };
  std::string out;
  std::string_view rest = source;
  while (!rest.empty()) {
    size_t amp = rest.find(" & ");
    std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 3);
    if (!out.empty()) out += " & ";
    if (part.rfind("users.", 0) == 0) {
      out += "user:" + unquote(part.substr(6));
    } else if (part.rfind("groups.", 0) == 0) {
      out += "group:" + unquote(part.substr(7));
    } else {
      out += "default";  // [defaults] or the built-in default
    }
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The percent-decoded value of name in the query string; nullopt when absent or malformed.
std::optional<std::string> query_param(const http::Request& req, std::string_view name) {
  std::string_view target(req.target().data(), req.target().size());
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    std::string_view pair = query.substr(0, query.find('&'));
    query = pair.size() < query.size() ? query.substr(pair.size() + 1) : std::string_view();
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    std::string_view raw = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
    std::string out;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '+') {
        out += ' ';
      } else if (raw[i] != '%') {
        out += raw[i];
      } else {
        if (i + 2 >= raw.size()) return std::nullopt;
        int hi = hex_digit(raw[i + 1]), lo = hex_digit(raw[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
      }
    }
    return out;
  }
  return std::nullopt;
}

Response no_policy_store() {
  return http::error_response(bhttp::status::service_unavailable,
                              "policy versions are not available on this broker");
}

Response store_error(const Error& e) {
  spdlog::error("broker policy_store_failed error={}", e.str());
  return http::error_response(bhttp::status::internal_server_error, "policy store");
}

// The policy and the comment of a PUT body: the policy JSON form itself, or
// {"policy": <form>, "comment": "..."}.
std::optional<Response> split_put_body(nlohmann::json body, nlohmann::json* policy,
                                       std::string* comment) {
  if (!body.contains("policy")) {
    *policy = std::move(body);
    return std::nullopt;
  }
  if (auto refused = api::only_fields(body, {"policy", "comment"})) return refused;
  if (body.contains("comment") && !body["comment"].is_null()) {
    if (!body["comment"].is_string() || body["comment"].get<std::string>().size() > kMaxComment) {
      return http::error_response(bhttp::status::bad_request,
                                  "comment: must be a string of at most 1024 bytes");
    }
    *comment = body["comment"].get<std::string>();
  }
  *policy = std::move(body["policy"]);
  return std::nullopt;
}

}  // namespace

BrokerApi::Awaitable BrokerApi::admin_policy_get(const Request& req, const PathParams&,
                                                 const std::string&) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, false, true, &s)) co_return std::move(*refused);
  PolicyStore* store = svc_.policy_store();
  if (!store) co_return no_policy_store();
  co_return http::json_response(bhttp::status::ok, version_json(store->current_version()));
}

BrokerApi::Awaitable BrokerApi::admin_policy_put(const Request& req, const PathParams&,
                                                 const std::string& peer) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, true, true, &s)) co_return std::move(*refused);
  PolicyStore* store = svc_.policy_store();
  if (!store) co_return no_policy_store();
  std::string source = "admin:" + s->user + "@" + peer;
  std::string admin = s->user;
  nlohmann::json body, policy;
  std::string comment;
  if (auto refused = api::parse_body(req, &body, false)) co_return std::move(*refused);
  if (auto refused = split_put_body(std::move(body), &policy, &comment)) co_return std::move(*refused);
  auto set = policies::policy_set_from_json(policy);
  if (!set) {
    // Nothing changes: the version in force stays, and the admin sees every problem at once.
    svc_.audit("policy_rejected", admin, source,
               std::to_string(set.error().items.size()) + " errors");
    co_return http::json_response(bhttp::status::bad_request,
                                  {{"error", "invalid policy"},
                                   {"errors", policies::issues_to_json(set.error())}});
  }
  auto added = store->commit(*set, "admin:" + admin, comment);
  if (!added) co_return store_error(added.error());
  svc_.audit("policy_update", admin, source,
             "version=" + std::to_string(added->version) + (comment.empty() ? "" : " comment=" + comment));
  co_await svc_.push_policy_limits(source);
  co_return http::json_response(bhttp::status::ok, version_json(*added));
}

BrokerApi::Awaitable BrokerApi::admin_policy_history(const Request& req, const PathParams&,
                                                     const std::string&) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, false, true, &s)) co_return std::move(*refused);
  PolicyStore* store = svc_.policy_store();
  if (!store) co_return no_policy_store();
  auto list = store->history(kHistoryLimit);
  if (!list) co_return store_error(list.error());
  nlohmann::json out = nlohmann::json::array();
  for (const PolicyVersion& v : *list) {
    out.push_back({{"version", v.version},
                   {"author", v.author},
                   {"created_at", api::iso_time(v.created_at)},
                   {"comment", v.comment}});
  }
  co_return http::json_response(bhttp::status::ok, {{"versions", out}});
}

BrokerApi::Awaitable BrokerApi::admin_policy_version(const Request& req, const PathParams& p,
                                                     const std::string&) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, false, true, &s)) co_return std::move(*refused);
  PolicyStore* store = svc_.policy_store();
  if (!store) co_return no_policy_store();
  const std::string& text = p.at("n");
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < 1) {
    co_return http::error_response(bhttp::status::not_found, "no such policy version");
  }
  auto v = store->version(n);
  if (!v) co_return store_error(v.error());
  if (!*v) co_return http::error_response(bhttp::status::not_found, "no such policy version");
  co_return http::json_response(bhttp::status::ok, version_json(**v));
}

BrokerApi::Awaitable BrokerApi::admin_policy_rollback(const Request& req, const PathParams&,
                                                      const std::string& peer) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, true, true, &s)) co_return std::move(*refused);
  PolicyStore* store = svc_.policy_store();
  if (!store) co_return no_policy_store();
  std::string admin = s->user;
  std::string source = "admin:" + admin + "@" + peer;
  nlohmann::json body;
  if (auto refused = api::parse_body(req, &body, false)) co_return std::move(*refused);
  if (auto refused = api::only_fields(body, {"version"})) co_return std::move(*refused);
  if (!body.contains("version") || !body["version"].is_number_integer()) {
    co_return http::error_response(bhttp::status::bad_request, "version: required integer");
  }
  int64_t n = body["version"].get<int64_t>();
  auto added = store->rollback(n, "admin:" + admin);
  if (!added) co_return store_error(added.error());
  if (!*added) co_return http::error_response(bhttp::status::not_found, "no such policy version");
  svc_.audit("policy_rollback", admin, source,
             "version=" + std::to_string((*added)->version) + " from=" + std::to_string(n));
  co_await svc_.push_policy_limits(source);
  co_return http::json_response(bhttp::status::ok, version_json(**added));
}

BrokerApi::Awaitable BrokerApi::admin_policy_resolve(const Request& req, const PathParams&,
                                                     const std::string&) {
  WebSession* s = nullptr;
  if (auto refused = require_session(req, false, true, &s)) co_return std::move(*refused);
  auto user = query_param(req, "user");
  if (!user || user->empty()) {
    co_return http::error_response(bhttp::status::bad_request, "user: required query parameter");
  }
  if (!is_valid_user_name(*user)) co_return http::error_response(bhttp::status::not_found, "no such user");
  auto groups = co_await svc_.groups_of(*user);
  if (!groups) {
    if (groups.error().message.find("no such user") != std::string::npos) {
      co_return http::error_response(bhttp::status::not_found, "no such user");
    }
    co_return http::error_response(bhttp::status::service_unavailable, "user directory unavailable");
  }
  policies::Resolution r = policies::resolve(svc_.policy_set(), *user, *groups);
  nlohmann::json sources = nlohmann::json::object();
  for (size_t i = 0; i < policies::kFieldCount; ++i) {
    sources[policies::field_name(static_cast<policies::Field>(i))] = api_source(r.sources[i]);
  }
  nlohmann::json out = {{"user", r.user},
                        {"groups", r.groups},
                        {"member_of", *groups},
                        {"effective", policies::effective_to_json(r.policy)},
                        {"sources", sources}};
  if (PolicyStore* store = svc_.policy_store()) out["version"] = store->current_version().version;
  co_return http::json_response(bhttp::status::ok, out);
}

}  // namespace appvirt::broker
