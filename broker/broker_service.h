#pragma once
// What the broker does, apart from HTTP: sign users in (PAM on the auth pool, lockout), list
// entitled apps, place and launch sessions (or reattach to a running one), issue and redeem
// one-time launch tokens, log sessions off, and keep the session directory and the host registry
// in step with the hosts. All of it runs on the one I/O thread; blocking calls are offloaded.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "broker/authenticator.h"
#include "broker/broker_config.h"
#include "broker/catalog.h"
#include "broker/host_client.h"
#include "broker/host_registry.h"
#include "broker/login_throttle.h"
#include "broker/metrics.h"
#include "broker/policy_store.h"
#include "broker/store.h"
#include "broker/user_directory.h"
#include "policies/policy.h"

namespace appvirt::broker {

struct BrokerDeps {
  Store& store;
  Authenticator& auth;
  UserDirectory& users;
  HostClient& host_client;
  boost::asio::thread_pool& auth_pool;
  std::function<int64_t()> wall_ms;  // milliseconds since the epoch (tests move it)
  // Versioned policies (admin API); null = config.policies, fixed, and no policy admin API.
  PolicyStore* policies = nullptr;
};

// What a live policy push did (policy_push.cc).
struct PolicyPushOutcome {
  int users = 0;   // users with live sessions
  int pushed = 0;  // (user, host) pairs whose limits and timeouts pushes succeeded
  int failed = 0;  // calls that failed (host down, refused); the next launch applies the policy
};

struct LoginOutcome {
  enum class Status { ok, denied, locked, error };
  Status status = Status::denied;
  std::chrono::seconds retry_after{0};
  std::string user;
  std::vector<std::string> groups;
  bool admin = false;
};

struct LaunchOutcome {
  unsigned status = 200;  // 200, or the HTTP status of the failure (403, 404, 502, 503, 500)
  std::string error;
  SessionRecord session;
  std::string token;
  bool reused = false;
  const App* app = nullptr;
  int width = 0;  // the display size asked of the host (0 when reattached)
  int height = 0;
};

struct SessionOutcome {
  unsigned status = 200;  // 200, 404, 502, 503, 500
  std::string error;
  SessionRecord session;
};

class BrokerService {
 public:
  BrokerService(boost::asio::any_io_executor io, const BrokerConfig& config, Catalog catalog,
                BrokerDeps deps);

  // channel is "portal" or "gateway" (audit only). The password is wiped after use.
  boost::asio::awaitable<LoginOutcome> login(std::string user, std::string password,
                                             std::string address, std::string channel);

  std::vector<const App*> entitled_apps(const std::string& user,
                                        const std::vector<std::string>& groups) const;
  const Catalog& catalog() const { return catalog_; }
  // The policy in force: the newest version of the policy store, else config.policies.
  const policies::PolicySet& policy_set() const;
  PolicyStore* policy_store() { return deps_.policies; }
  // Group names of a user from the directory, on the auth pool (NSS may block).
  boost::asio::awaitable<Result<std::vector<std::string>>> groups_of(std::string user);
  // Sends every user with live sessions the container limits of the policy in force, on each
  // host running their sessions (policy_push.cc). source: who changed the policy (audit).
  boost::asio::awaitable<PolicyPushOutcome> push_policy_limits(std::string source);

  // Reattaches to the user's live session of the app, or places and starts a new one; either way
  // issues a fresh launch token. width/height 0 = configured defaults.
  boost::asio::awaitable<LaunchOutcome> launch(std::string user, std::vector<std::string> groups,
                                               std::string app_id, int width, int height,
                                               std::string source);

  Result<std::vector<SessionRecord>> sessions(const std::string& user, bool include_ended);
  Result<std::vector<AuditEvent>> recent_audit(int limit) { return deps_.store.recent_audit(limit); }
  // Logs a session off through its host. owner empty = any user's (admin).
  boost::asio::awaitable<SessionOutcome> logoff(std::string session_id, std::string owner,
                                                std::string source);

  // Redeems a launch token for the gateway: single use, not expired, live session.
  boost::asio::awaitable<SessionOutcome> redeem(std::string token);

  // Internal API for hosts.
  Result<nlohmann::json> register_host(const nlohmann::json& body);
  Result<void> report_load(const std::string& name, const nlohmann::json& body);

  // Aligns the directory with what each reachable host runs (at start and on every poll).
  boost::asio::awaitable<void> reconcile();
  // Probes configured hosts, expires silent registered ones, reconciles, purges tokens.
  boost::asio::awaitable<void> poll_once();
  // Runs poll_once every host_poll_interval until stop() is called.
  boost::asio::awaitable<void> poll_loop();
  void stop();
  // stop() and drop the I/O objects the service owns (before its io_context goes away).
  void shutdown();

  void audit(const std::string& event, const std::string& user, const std::string& source,
             const std::string& detail);

  HostRegistry& hosts() { return hosts_; }
  // Limits and usage of a live session as its host last reported them (null when unknown).
  nlohmann::json session_resources(const std::string& id) const;
  LoginThrottle& throttle() { return throttle_; }
  Metrics& metrics() { return metrics_; }
  const BrokerConfig& config() const { return config_; }
  // Gauges that are computed, not counted; call before rendering metrics.
  void update_gauges();

 private:
  boost::asio::awaitable<std::optional<LaunchOutcome>> try_reattach(const std::string& user,
                                                                    const App& app);
  boost::asio::awaitable<LaunchOutcome> start_new(const std::string& user, const App& app,
                                                  const policies::EffectivePolicy& policy,
                                                  int width, int height);
  Result<std::string> issue_token(const SessionRecord& s);
  // Waits (bounded) until no launch of key is in flight; false when it took too long.
  boost::asio::awaitable<bool> wait_for_turn(const std::string& key);
  std::map<std::string, int> live_sessions_per_host();
  void count_login(const std::string& channel, const char* result);
  // Invalid names, locked keys and attempts racing one in flight: answered without PAM.
  std::optional<LoginOutcome> refuse_early(const std::string& user, const std::string& address,
                                           const std::string& channel);
  boost::asio::awaitable<LoginOutcome> finish_login(const std::string& typed,
                                                    const std::string& canonical,
                                                    const std::string& address,
                                                    const std::string& channel);
  boost::asio::awaitable<void> reconcile_host(const HostRecord& host);
  void init_metrics();

  boost::asio::any_io_executor io_;
  const BrokerConfig& config_;
  Catalog catalog_;
  BrokerDeps deps_;
  HostRegistry hosts_;
  LoginThrottle throttle_;
  Metrics metrics_;
  std::map<std::string, nlohmann::json> resources_;  // session id → HostSession::resources
  std::set<std::string> launching_;                // "user\napp" launches in flight
  std::map<std::string, int> auth_in_flight_;      // "u:user" / "a:address" → attempts running
  std::unique_ptr<boost::asio::steady_timer> poll_timer_;
  bool stopped_ = false;
};

// The limits a session of app gets: the user's policy limits, tightened by the app's own limits
// where the app sets lower ones.
nlohmann::json session_limits_json(const policies::EffectivePolicy& policy, const AppLimits& app);

// User names the broker accepts at all (before PAM): 1-64 of [A-Za-z0-9._-@], not starting
// with '-'. Keeps control characters and separators out of logs, paths and the PAM stack.
bool is_valid_user_name(std::string_view name);

}  // namespace appvirt::broker
