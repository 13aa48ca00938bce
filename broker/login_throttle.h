#pragma once
// Failed-login accounting shared by the portal login and the gateway's logon: per user name and
// per source address, failures within a sliding window lock that key out for a while. A locked
// key is refused before PAM runs, so guessing gets no answer at all while locked. Memory is
// bounded: the table forgets expired entries and, when full, the oldest ones.
#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>

namespace appvirt::broker {

struct ThrottleLimits {
  int max_failures_per_user = 5;
  int max_failures_per_address = 20;
  std::chrono::seconds window{300};
  std::chrono::seconds lockout{300};
  std::size_t max_tracked_keys = 100'000;
};

class LoginThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LoginThrottle(ThrottleLimits limits) : limits_(limits) {}

  // Seconds until user or address may try again; nullopt when both may try now.
  std::optional<std::chrono::seconds> retry_after(const std::string& user,
                                                  const std::string& address,
                                                  Clock::time_point now) const;
  // Records a failed attempt; returns true when this failure started a lockout.
  bool record_failure(const std::string& user, const std::string& address, Clock::time_point now);
  // A successful login clears the user's failures (not the address's: one good account must not
  // reset an address that is guessing other users' passwords).
  void record_success(const std::string& user, Clock::time_point now);

  std::size_t locked_keys(Clock::time_point now) const;
  std::size_t tracked_keys() const { return entries_.size(); }

 private:
  struct Entry {
    std::deque<Clock::time_point> failures;  // within the window, oldest first
    Clock::time_point locked_until{};
    Clock::time_point last_seen{};
  };
  bool fail_key(const std::string& key, int max, Clock::time_point now);
  std::optional<std::chrono::seconds> remaining(const std::string& key, Clock::time_point now) const;
  void prune(Clock::time_point now);

  ThrottleLimits limits_;
  std::unordered_map<std::string, Entry> entries_;  // "u:<user>" and "a:<address>"
};

}  // namespace appvirt::broker
