#include "broker/broker_service.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "broker/crypto.h"
#include "broker/offload.h"
#include "common/log.h"
#include "policies/container_limits.h"
#include "policies/resolver.h"

namespace appvirt::broker {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// Wipes a password when the attempt is over, whichever way it ends.
struct Wipe {
  std::string* s;
  ~Wipe() {
    if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
    s->clear();
  }
};

}  // namespace

// An app can ask for less than the policy allows, never for more.
nlohmann::json session_limits_json(const policies::EffectivePolicy& policy, const AppLimits& l) {
  nlohmann::json j = policies::container_limits_json(policy);
  auto tighten = [&j](const char* key, auto value) {
    if (!value) return;
    if (!j.contains(key) || j[key].get<int64_t>() > static_cast<int64_t>(*value)) {
      j[key] = static_cast<int64_t>(*value);
    }
  };
  tighten("memory_max", l.memory_max);
  tighten("cpu_weight", l.cpu_weight);
  tighten("cpu_max_percent", l.cpu_max_percent);
  tighten("pids_max", l.pids_max);
  return j;
}

namespace {

LaunchOutcome launch_error(unsigned status, std::string message) {
  LaunchOutcome o;
  o.status = status;
  o.error = std::move(message);
  return o;
}

SessionOutcome session_error(unsigned status, std::string message) {
  SessionOutcome o;
  o.status = status;
  o.error = std::move(message);
  return o;
}

}  // namespace

bool is_valid_user_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || c == '@';
  });
}

BrokerService::BrokerService(asio::any_io_executor io, const BrokerConfig& config, Catalog catalog,
                             BrokerDeps deps)
    : io_(std::move(io)),
      config_(config),
      catalog_(std::move(catalog)),
      deps_(std::move(deps)),
      hosts_(config.host_report_timeout),
      throttle_(ThrottleLimits{config.lockout.max_failures_per_user,
                               config.lockout.max_failures_per_address, config.lockout.window,
                               config.lockout.lockout, 100'000}) {
  init_metrics();
  for (const HostConfig& h : config_.hosts) {
    hosts_.add_configured(HostRecord{h.name, h.socket, h.capacity, true, "container", 0, "{}"});
  }
  if (auto known = deps_.store.list_hosts()) {
    for (const HostRecord& h : *known) hosts_.restore(h);
  }
}

void BrokerService::init_metrics() {
  metrics_.describe("appvirt_broker_logins_total", "counter",
                    "Login attempts by channel and result (ok, denied, locked, error).");
  metrics_.describe("appvirt_broker_launches_total", "counter",
                    "Launch requests by result (new, reattached, failed).");
  metrics_.describe("appvirt_broker_tokens_redeemed_total", "counter",
                    "Launch token redemptions by result (ok, unknown, used, expired, ended).");
  metrics_.describe("appvirt_broker_logoffs_total", "counter", "Sessions logged off via the broker.");
  metrics_.describe("appvirt_broker_sessions", "gauge", "Live sessions in the directory.");
  metrics_.describe("appvirt_broker_hosts", "gauge", "Known hosts by state (up, down).");
  metrics_.describe("appvirt_broker_locked_keys", "gauge",
                    "User names and addresses currently locked out.");
  metrics_.describe("appvirt_broker_web_sessions", "gauge", "Signed-in browser sessions.");
}

void BrokerService::audit(const std::string& event, const std::string& user,
                          const std::string& source, const std::string& detail) {
  AuditEvent e{0, deps_.wall_ms(), event, user, source, detail};
  if (auto r = deps_.store.audit(e); !r) {
    spdlog::error("broker audit_failed event={} error={}", event, log_quote(r.error().str()));
  }
  spdlog::info("broker audit event={} user={} source={} detail={}", event, log_quote(user),
               log_quote(source), log_quote(detail));
}

void BrokerService::count_login(const std::string& channel, const char* result) {
  metrics_.inc("appvirt_broker_logins_total", {{"channel", channel}, {"result", result}});
}

std::optional<LoginOutcome> BrokerService::refuse_early(const std::string& user,
                                                        const std::string& address,
                                                        const std::string& channel) {
  LoginOutcome out;
  if (!is_valid_user_name(user)) {
    throttle_.record_failure(user, address, Clock::now());
    audit("login_failed", "", address, "invalid user name");
    count_login(channel, "denied");
    return out;
  }
  auto locked = throttle_.retry_after(user, address, Clock::now());
  // One attempt per user and a few per address at a time: PAM's failure delay must not let
  // parallel guesses slip past the counter before the first failure is recorded.
  auto in_flight = [this](const std::string& k) {
    auto it = auth_in_flight_.find(k);
    return it == auth_in_flight_.end() ? 0 : it->second;
  };
  if (!locked && (in_flight("u:" + user) >= 1 || in_flight("a:" + address) >= 4)) {
    locked = std::chrono::seconds(1);
  }
  if (!locked) return std::nullopt;
  audit("login_locked", user, address, channel);
  count_login(channel, "locked");
  out.status = LoginOutcome::Status::locked;
  out.retry_after = *locked;
  return out;
}

asio::awaitable<LoginOutcome> BrokerService::login(std::string user, std::string password,
                                                   std::string address, std::string channel) {
  Wipe wipe{&password};
  if (auto refused = refuse_early(user, address, channel)) co_return *refused;
  struct InFlight {
    std::map<std::string, int>& m;
    std::string u, a;
    InFlight(std::map<std::string, int>& map, std::string user, std::string addr)
        : m(map), u(std::move(user)), a(std::move(addr)) {
      ++m[u];
      ++m[a];
    }
    ~InFlight() {
      if (--m[u] <= 0) m.erase(u);
      if (--m[a] <= 0) m.erase(a);
    }
  } in_flight(auth_in_flight_, "u:" + user, "a:" + address);

  Authenticator& auth = deps_.auth;
  // Named callables: g++ 12 mishandles prvalue temporaries in a co_await full-expression.
  auto check = [&auth, user, password, address]() mutable {
    AuthResult res = auth.authenticate(user, password, address);
    OPENSSL_cleanse(password.data(), password.size());
    return res;
  };
  AuthResult r = co_await offload(deps_.auth_pool, std::move(check));
  LoginOutcome out;
  if (r.status == AuthResult::Status::error) {
    audit("login_error", user, address, r.reason);
    count_login(channel, "error");
    out.status = LoginOutcome::Status::error;
    co_return out;
  }
  if (r.status == AuthResult::Status::denied) {
    bool started = throttle_.record_failure(user, address, Clock::now());
    audit("login_failed", user, address, channel + ": " + r.reason);
    if (started) audit("lockout", user, address, "too many failed logins");
    count_login(channel, "denied");
    co_return out;
  }
  std::string canonical = r.user.empty() ? user : r.user;
  co_return co_await finish_login(user, canonical, address, channel);
}

asio::awaitable<LoginOutcome> BrokerService::finish_login(const std::string& typed,
                                                          const std::string& canonical,
                                                          const std::string& address,
                                                          const std::string& channel) {
  UserDirectory& dir = deps_.users;
  auto lookup = [&dir, canonical]() { return dir.groups_of(canonical); };
  auto groups = co_await offload(deps_.auth_pool, std::move(lookup));
  LoginOutcome out;
  if (!groups) {
    audit("login_error", canonical, address, groups.error().str());
    count_login(channel, "error");
    out.status = LoginOutcome::Status::error;
    co_return out;
  }
  throttle_.record_success(typed, Clock::now());
  out.status = LoginOutcome::Status::ok;
  out.user = canonical;
  out.groups = std::move(*groups);
  out.admin = std::find(out.groups.begin(), out.groups.end(), config_.admin_group) != out.groups.end();
  audit("login", canonical, address, channel + (out.admin ? " admin" : ""));
  count_login(channel, "ok");
  co_return out;
}

std::vector<const App*> BrokerService::entitled_apps(const std::string& user,
                                                     const std::vector<std::string>& groups) const {
  // The catalog says who may see an app; the user's policy may narrow that further.
  policies::Resolution r = policies::resolve(policy_set(), user, groups);
  std::vector<const App*> out;
  for (const App* a : catalog_.entitled(user, groups)) {
    if (r.policy.apps.allows(a->id)) out.push_back(a);
  }
  return out;
}

Result<std::string> BrokerService::issue_token(const SessionRecord& s) {
  auto token = random_token(32);
  if (!token) return tl::unexpected(token.error());
  TokenRecord rec{sha256_hex(*token), s.id, s.user,
                  deps_.wall_ms() + std::chrono::milliseconds(config_.launch_token_ttl).count()};
  if (auto r = deps_.store.put_token(rec); !r) return tl::unexpected(r.error());
  return token;
}

std::map<std::string, int> BrokerService::live_sessions_per_host() {
  std::map<std::string, int> out;
  if (auto all = deps_.store.list_sessions("", false)) {
    for (const auto& s : *all) ++out[s.host];
  }
  return out;
}

asio::awaitable<std::optional<LaunchOutcome>> BrokerService::try_reattach(const std::string& user,
                                                                          const App& app) {
  auto existing = deps_.store.find_live_session(user, app.id);
  if (!existing) co_return launch_error(500, "session directory: " + existing.error().str());
  if (!*existing || (*existing)->secret.empty()) co_return std::nullopt;
  SessionRecord s = **existing;
  const HostState* host = hosts_.find(s.host);
  if (!host) {
    (void)deps_.store.end_session(s.id, "host-removed", deps_.wall_ms());
    co_return std::nullopt;
  }
  HostRecord record = host->record;
  auto live = co_await deps_.host_client.get(record, s.id);
  if (!live) {
    if (live.error().not_found()) {
      (void)deps_.store.end_session(s.id, "gone", deps_.wall_ms());
    } else {
      // The host may come back with the session; meanwhile the user gets a new one elsewhere.
      spdlog::warn("broker reattach_unreachable session={} host={} error={}", s.id, s.host,
                   log_quote(live.error().message));
    }
    co_return std::nullopt;
  }
  if (live->state == "ended") {
    (void)deps_.store.end_session(s.id, live->end_reason.empty() ? "ended" : live->end_reason,
                                  deps_.wall_ms());
    co_return std::nullopt;
  }
  if (live->state != s.state) {
    s.state = live->state;
    (void)deps_.store.put_session(s);
  }
  LaunchOutcome out;
  out.session = s;
  out.reused = true;
  co_return out;
}

asio::awaitable<LaunchOutcome> BrokerService::start_new(const std::string& user, const App& app,
                                                        const policies::EffectivePolicy& policy,
                                                        int width, int height) {
  auto mine = deps_.store.list_sessions(user, false);
  if (!mine) co_return launch_error(500, "session directory: " + mine.error().str());
  if (static_cast<int64_t>(mine->size()) >= policy.max_sessions) {
    co_return launch_error(403, "session limit reached (" + std::to_string(policy.max_sessions) + ")");
  }
  if (policy.network != policies::Network::loopback) {
    // hostd implements loopback-only sandboxes so far; a policy asking for more must not
    // silently get less.
    co_return launch_error(503, std::string("no host offers network = ") +
                                    policies::to_string(policy.network));
  }
  // The policy decides the isolation; an app marked "vm" is never run in a mere container.
  Isolation isolation = (app.isolation == Isolation::vm ||
                         policy.isolation == policies::Isolation::vm) ? Isolation::vm
                                                                      : Isolation::container;
  auto per_host = live_sessions_per_host();
  auto host = hosts_.pick(isolation, per_host);
  if (!host && isolation == Isolation::container && policy.overflow_to_vm) {
    // Containers are full everywhere: the policy lets this user have a VM instead.
    host = hosts_.pick(Isolation::vm, per_host);
    if (host) {
      isolation = Isolation::vm;
      spdlog::info("broker placement_overflow user={} app={} host={} isolation=vm", user, app.id,
                   host->name);
    }
  }
  if (!host) {
    co_return launch_error(503, std::string("no host with free ") + to_string(isolation) +
                                    " capacity");
  }
  policies::ScreenSize size = policy.clamp({width ? width : config_.default_width,
                                            height ? height : config_.default_height});
  HostLaunchRequest req{user, app.id, app.command, session_limits_json(policy, app.limits), size.width,
                        size.height};
  req.idle_timeout_s = policy.idle_timeout.count();  // hostd enforces both (docs/hostd.md)
  req.disconnect_timeout_s = policy.disconnect_timeout.count();
  req.isolation = to_string(isolation);
  auto started = co_await deps_.host_client.launch(*host, req);
  if (!started) {
    const HostCallError& e = started.error();
    spdlog::warn("broker launch_failed user={} app={} host={} status={} error={}", user, app.id,
                 host->name, e.status, log_quote(e.message));
    if (e.status == 0) hosts_.probe_failed(host->name, e.message);
    if (e.status == 0 || e.status >= 500) co_return launch_error(503, "host " + host->name + " failed to start the session");
    co_return launch_error(502, "host " + host->name + " refused the session: " + e.message);
  }
  hosts_.placed(host->name, isolation);
  SessionRecord s;
  s.id = started->session_id;
  s.user = user;
  s.app_id = app.id;
  s.host = host->name;
  s.state = started->state.empty() ? "running" : started->state;
  s.endpoint_unix = started->endpoint_unix;
  s.endpoint_tcp = started->endpoint_tcp;
  s.secret = started->secret;
  s.display = started->display;
  s.created_at = deps_.wall_ms();
  if (auto r = deps_.store.put_session(s); !r) {
    co_return launch_error(500, "session directory: " + r.error().str());
  }
  LaunchOutcome out;
  out.session = s;
  out.width = size.width;
  out.height = size.height;
  co_return out;
}

asio::awaitable<bool> BrokerService::wait_for_turn(const std::string& key) {
  asio::steady_timer wait(io_);
  auto give_up = Clock::now() + config_.hostd_timeout + std::chrono::seconds(5);
  while (launching_.count(key)) {
    if (Clock::now() > give_up) co_return false;
    wait.expires_after(std::chrono::milliseconds(50));
    boost::system::error_code ec;
    co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return true;
}

asio::awaitable<LaunchOutcome> BrokerService::launch(std::string user,
                                                     std::vector<std::string> groups,
                                                     std::string app_id, int width, int height,
                                                     std::string source) {
  const App* app = catalog_.find(app_id);
  if (!app) co_return launch_error(404, "no such app");
  policies::Resolution policy = policies::resolve(policy_set(), user, groups);
  if (!is_entitled(*app, user, groups) || !policy.policy.apps.allows(app_id)) {
    audit("launch_denied", user, source, app_id);
    co_return launch_error(403, "not entitled to this app");
  }
  // One launch per user and app at a time, so a double click cannot start two sessions.
  std::string key = user + "\n" + app_id;
  if (!co_await wait_for_turn(key)) {
    co_return launch_error(503, "another launch of this app is still running");
  }
  launching_.insert(key);
  struct Done {
    std::set<std::string>& s;
    std::string k;
    ~Done() { s.erase(k); }
  } done{launching_, key};

  LaunchOutcome out;
  auto reattached = co_await try_reattach(user, *app);
  if (reattached) {
    out = std::move(*reattached);
  } else {
    out = co_await start_new(user, *app, policy.policy, width, height);
  }
  if (out.status != 200) {
    metrics_.inc("appvirt_broker_launches_total", {{"result", "failed"}});
    audit("launch_failed", user, source, app_id + ": " + out.error);
    co_return out;
  }
  auto token = issue_token(out.session);
  if (!token) co_return launch_error(500, "launch token: " + token.error().str());
  out.token = std::move(*token);
  out.app = app;
  metrics_.inc("appvirt_broker_launches_total", {{"result", out.reused ? "reattached" : "new"}});
  audit(out.reused ? "reconnect" : "launch", user, source,
        app_id + " session=" + out.session.id + " host=" + out.session.host);
  co_return out;
}

Result<std::vector<SessionRecord>> BrokerService::sessions(const std::string& user,
                                                           bool include_ended) {
  return deps_.store.list_sessions(user, include_ended);
}

asio::awaitable<SessionOutcome> BrokerService::logoff(std::string session_id, std::string owner,
                                                      std::string source) {
  auto found = deps_.store.get_session(session_id);
  if (!found) co_return session_error(500, "session directory: " + found.error().str());
  if (!*found || (!owner.empty() && (*found)->user != owner)) {
    co_return session_error(404, "no such session");  // another user's session does not exist
  }
  SessionRecord s = **found;
  if (s.live()) {
    const HostState* host = hosts_.find(s.host);
    if (host) {
      HostRecord record = host->record;
      auto r = co_await deps_.host_client.logoff(record, s.id);
      if (!r && !r.error().not_found()) {
        co_return session_error(r.error().status == 0 ? 503 : 502,
                                "host " + s.host + ": " + r.error().message);
      }
    }
    (void)deps_.store.end_session(s.id, "logoff", deps_.wall_ms());
    metrics_.inc("appvirt_broker_logoffs_total");
    audit("logoff", s.user, source, "session=" + s.id + " app=" + s.app_id);
  }
  auto after = deps_.store.get_session(session_id);
  SessionOutcome out;
  out.session = (after && *after) ? **after : s;
  co_return out;
}

asio::awaitable<SessionOutcome> BrokerService::redeem(std::string token) {
  auto rejected = [&](const char* why, const std::string& user) {
    metrics_.inc("appvirt_broker_tokens_redeemed_total", {{"result", why}});
    audit("token_rejected", user, "gateway", why);
    return session_error(404, "invalid or expired token");
  };
  if (!is_token_syntax(token)) co_return rejected("unknown", "");
  auto r = deps_.store.redeem_token(sha256_hex(token), deps_.wall_ms());
  OPENSSL_cleanse(token.data(), token.size());
  if (!r) co_return session_error(500, "token store: " + r.error().str());
  if (r->status == TokenStatus::unknown) co_return rejected("unknown", "");
  if (r->status == TokenStatus::used) co_return rejected("used", "");
  if (r->status == TokenStatus::expired) co_return rejected("expired", "");
  auto s = deps_.store.get_session(r->token.session_id);
  if (!s) co_return session_error(500, "session directory: " + s.error().str());
  if (!*s || !(*s)->live() || (*s)->user != r->token.user || (*s)->secret.empty()) {
    co_return rejected("ended", r->token.user);
  }
  metrics_.inc("appvirt_broker_tokens_redeemed_total", {{"result", "ok"}});
  audit("token_redeemed", (*s)->user, "gateway", "session=" + (*s)->id);
  SessionOutcome out;
  out.session = **s;
  co_return out;
}

}  // namespace appvirt::broker
