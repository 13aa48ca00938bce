#pragma once
// Browser sessions: an opaque random cookie (kept only as its SHA-256) maps to the signed-in
// user, the groups resolved at login and the CSRF token the page must echo in X-CSRF-Token.
// Sessions end at logout, after the absolute TTL, or after the idle timeout. In memory: a broker
// restart signs browsers out, which is the safe failure.
#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"

namespace appvirt::broker {

struct WebSession {
  std::string user;
  std::vector<std::string> groups;
  bool admin = false;
  std::string csrf_token;
  std::string address;
  std::chrono::steady_clock::time_point created;
  std::chrono::steady_clock::time_point last_used;
  std::chrono::system_clock::time_point expires_at;  // absolute end, for the client
};

class WebSessionTable {
 public:
  using Clock = std::chrono::steady_clock;
  WebSessionTable(std::chrono::seconds ttl, std::chrono::seconds idle, std::size_t max_sessions)
      : ttl_(ttl), idle_(idle), max_sessions_(max_sessions) {}

  struct Created {
    std::string cookie;  // the value for Set-Cookie; not kept by the table
    const WebSession* session;
  };
  // Makes a session with fresh cookie and CSRF token; evicts the least recently used one when full.
  Result<Created> create(WebSession s, Clock::time_point now);
  // The live session for a cookie value (refreshing its idle timer), or null.
  WebSession* find(const std::string& cookie, Clock::time_point now);
  void remove(const std::string& cookie);
  // Ends every session of user (account removed, admin action).
  int remove_user(const std::string& user);
  std::size_t size() const { return sessions_.size(); }
  std::chrono::seconds ttl() const { return ttl_; }

 private:
  void expire(Clock::time_point now);

  std::chrono::seconds ttl_;
  std::chrono::seconds idle_;
  std::size_t max_sessions_;
  std::unordered_map<std::string, WebSession> sessions_;  // sha256(cookie) → session
};

}  // namespace appvirt::broker
