// Live policy push: after the policy version changes, every user with live sessions gets the
// container limits and the session timeouts of the new policy on each host running their
// sessions, through hostd's PUT /v1/users/{user}/limits and PUT /v1/users/{user}/timeouts, so
// memory, cpu and pids limits of running containers and the idle/disconnect timeouts of running
// sessions change at once. The other fields (entitlement, max_sessions, isolation, network,
// screen size) are read at each launch and need no push.
#include <map>
#include <set>

#include "broker/broker_service.h"
#include "broker/offload.h"
#include "common/log.h"
#include "policies/resolver.h"

namespace appvirt::broker {

namespace asio = boost::asio;

namespace {

struct UserSessions {
  std::set<std::string> hosts;
  std::set<std::string> apps;
};

// The limits a user's container should have: the policy's, tightened by the own limits of every
// app the user runs there (a container is shared by the user's apps; an app's cap stays in force
// while it runs, as it was at its launch).
nlohmann::json container_limits_for(const policies::EffectivePolicy& policy,
                                    const std::set<std::string>& apps, const Catalog& catalog) {
  nlohmann::json limits = session_limits_json(policy, AppLimits{});
  for (const std::string& id : apps) {
    const App* app = catalog.find(id);
    if (!app) continue;
    nlohmann::json tight = session_limits_json(policy, app->limits);
    for (const auto& [key, value] : tight.items()) {
      if (!limits.contains(key) || limits[key].get<int64_t>() > value.get<int64_t>()) {
        limits[key] = value;
      }
    }
  }
  return limits;
}

}  // namespace

const policies::PolicySet& BrokerService::policy_set() const {
  return deps_.policies ? deps_.policies->current() : config_.policies;
}

asio::awaitable<Result<std::vector<std::string>>> BrokerService::groups_of(std::string user) {
  UserDirectory& dir = deps_.users;
  auto lookup = [&dir, user]() { return dir.groups_of(user); };
  auto groups = co_await offload(deps_.auth_pool, std::move(lookup));
  co_return groups;
}

asio::awaitable<PolicyPushOutcome> BrokerService::push_policy_limits(std::string source) {
  // Launches in flight resolved the policy before it changed and are not in the directory yet:
  // let them finish, so the push below covers their containers too.
  std::set<std::string> in_flight = launching_;
  for (const std::string& key : in_flight) (void)co_await wait_for_turn(key);

  PolicyPushOutcome out;
  auto live = deps_.store.list_sessions("", false);
  if (!live) {
    spdlog::error("broker policy_push_failed error={}", log_quote(live.error().str()));
    co_return out;
  }
  std::map<std::string, UserSessions> users;
  for (const SessionRecord& s : *live) {
    users[s.user].hosts.insert(s.host);
    users[s.user].apps.insert(s.app_id);
  }
  std::string version = deps_.policies
                            ? std::to_string(deps_.policies->current_version().version)
                            : "config";
  for (const auto& [user, sessions] : users) {
    ++out.users;
    auto groups = co_await groups_of(user);
    if (!groups) {
      ++out.failed;
      audit("policy_push_failed", user, source, "version=" + version + " groups: " + groups.error().str());
      continue;
    }
    policies::Resolution r = policies::resolve(policy_set(), user, *groups);
    nlohmann::json limits = container_limits_for(r.policy, sessions.apps, catalog_);
    nlohmann::json timeouts = {{"idle_timeout_s", r.policy.idle_timeout.count()},
                               {"disconnect_timeout_s", r.policy.disconnect_timeout.count()}};
    for (const std::string& host_name : sessions.hosts) {
      const HostState* host = hosts_.find(host_name);
      if (!host) continue;
      HostRecord record = host->record;
      // 404 from either call: the container or the sessions ended meanwhile (or, for limits, the
      // user runs only VM sessions there): nothing to change, not a failure.
      auto applied = co_await deps_.host_client.set_user_limits(record, user, limits);
      auto timed = co_await deps_.host_client.set_user_timeouts(record, user, timeouts);
      std::string error;
      if (!applied && !applied.error().not_found()) error = "limits: " + applied.error().message;
      if (!timed && !timed.error().not_found()) {
        error += (error.empty() ? "" : "; ") + std::string("timeouts: ") + timed.error().message;
      }
      if (!error.empty()) {
        ++out.failed;
        audit("policy_push_failed", user, source,
              "version=" + version + " host=" + host_name + ": " + error);
      } else if (applied || timed) {
        ++out.pushed;
        spdlog::info("broker policy_push user={} host={} version={} limits={} timeouts={}", user,
                     host_name, version, applied ? applied->dump() : "null",
                     timed ? timeouts.dump() : "null");
      }
    }
  }
  audit("policy_push", "", source,
        "version=" + version + " users=" + std::to_string(out.users) + " pushed=" +
            std::to_string(out.pushed) + " failed=" + std::to_string(out.failed));
  co_return out;
}

}  // namespace appvirt::broker
