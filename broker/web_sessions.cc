#include "broker/web_sessions.h"

#include "broker/crypto.h"

namespace appvirt::broker {

Result<WebSessionTable::Created> WebSessionTable::create(WebSession s, Clock::time_point now) {
  expire(now);
  if (sessions_.size() >= max_sessions_) {
    auto oldest = sessions_.begin();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    }
    if (oldest != sessions_.end()) sessions_.erase(oldest);
  }
  auto cookie = random_token(32);
  if (!cookie) return tl::unexpected(cookie.error());
  auto csrf = random_token(32);
  if (!csrf) return tl::unexpected(csrf.error());
  s.csrf_token = std::move(*csrf);
  s.created = now;
  s.last_used = now;
  s.expires_at = std::chrono::system_clock::now() + ttl_;
  auto [it, inserted] = sessions_.insert_or_assign(sha256_hex(*cookie), std::move(s));
  return Created{std::move(*cookie), &it->second};
}

WebSession* WebSessionTable::find(const std::string& cookie, Clock::time_point now) {
  if (!is_token_syntax(cookie)) return nullptr;
  auto it = sessions_.find(sha256_hex(cookie));
  if (it == sessions_.end()) return nullptr;
  WebSession& s = it->second;
  if (now - s.created >= ttl_ || now - s.last_used >= idle_) {
    sessions_.erase(it);
    return nullptr;
  }
  s.last_used = now;
  return &s;
}

void WebSessionTable::remove(const std::string& cookie) {
  if (is_token_syntax(cookie)) sessions_.erase(sha256_hex(cookie));
}

int WebSessionTable::remove_user(const std::string& user) {
  int n = 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.user == user) {
      it = sessions_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

void WebSessionTable::expire(Clock::time_point now) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    bool dead = now - it->second.created >= ttl_ || now - it->second.last_used >= idle_;
    it = dead ? sessions_.erase(it) : std::next(it);
  }
}

}  // namespace appvirt::broker
