#include "broker/login_throttle.h"

#include <algorithm>

namespace appvirt::broker {

namespace {

std::chrono::seconds ceil_seconds(LoginThrottle::Clock::duration d) {
  auto s = std::chrono::ceil<std::chrono::seconds>(d);
  return std::max(s, std::chrono::seconds(1));
}

}  // namespace

std::optional<std::chrono::seconds> LoginThrottle::remaining(const std::string& key,
                                                             Clock::time_point now) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.locked_until <= now) return std::nullopt;
  return ceil_seconds(it->second.locked_until - now);
}

std::optional<std::chrono::seconds> LoginThrottle::retry_after(const std::string& user,
                                                               const std::string& address,
                                                               Clock::time_point now) const {
  auto u = remaining("u:" + user, now);
  auto a = remaining("a:" + address, now);
  if (u && a) return std::max(*u, *a);
  return u ? u : a;
}

bool LoginThrottle::fail_key(const std::string& key, int max, Clock::time_point now) {
  Entry& e = entries_[key];
  e.last_seen = now;
  while (!e.failures.empty() && e.failures.front() <= now - limits_.window) e.failures.pop_front();
  e.failures.push_back(now);
  if (static_cast<int>(e.failures.size()) < max) return false;
  bool was_locked = e.locked_until > now;
  e.locked_until = now + limits_.lockout;
  // After a lockout the count starts again, so the next lockout needs max new failures.
  e.failures.clear();
  return !was_locked;
}

bool LoginThrottle::record_failure(const std::string& user, const std::string& address,
                                   Clock::time_point now) {
  prune(now);
  bool locked = fail_key("u:" + user, limits_.max_failures_per_user, now);
  locked = fail_key("a:" + address, limits_.max_failures_per_address, now) || locked;
  return locked;
}

void LoginThrottle::record_success(const std::string& user, Clock::time_point now) {
  auto it = entries_.find("u:" + user);
  if (it != entries_.end() && it->second.locked_until <= now) entries_.erase(it);
}

std::size_t LoginThrottle::locked_keys(Clock::time_point now) const {
  return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(), [&](const auto& kv) {
    return kv.second.locked_until > now;
  }));
}

void LoginThrottle::prune(Clock::time_point now) {
  if (entries_.size() < limits_.max_tracked_keys) return;
  for (auto it = entries_.begin(); it != entries_.end();) {
    bool idle = it->second.locked_until <= now && it->second.last_seen <= now - limits_.window;
    it = idle ? entries_.erase(it) : std::next(it);
  }
  // Still full (a flood of distinct names): drop unlocked entries, oldest activity first.
  while (entries_.size() >= limits_.max_tracked_keys) {
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.locked_until > now) continue;
      if (victim == entries_.end() || it->second.last_seen < victim->second.last_seen) victim = it;
    }
    if (victim == entries_.end()) break;  // everything is locked: keep the locks
    entries_.erase(victim);
  }
}

}  // namespace appvirt::broker
