// Idle and disconnect timeouts. hostd does not see RDP traffic; the session's appvirt-rdp
// keeps an activity report (clients connected since when, last input) in its endpoint dir, and a
// session with a timeout re-reads it every activity_poll (docs/session-host.md). A file rather
// than a pipe, so a restarted hostd keeps enforcing the timeouts of the sessions it re-adopts.
#include <algorithm>

#include "common/log.h"
#include "session-host/hostd/endpoint_activity.h"
#include "session-host/hostd/session_manager.h"

namespace appvirt::hostd {

namespace asio = boost::asio;
using std::chrono::milliseconds;

std::string SessionManager::activity_file(const Session& s) const {
  return endpoint_dir(s) + "/status.json";
}

void SessionManager::watch_timeouts(Live& live) {
  SessionTimeouts t{live.s.idle_timeout_s, live.s.disconnect_timeout_s};
  if (!t.any() || live.s.state != SessionState::running) return;
  live.timeout_check = std::make_unique<asio::steady_timer>(executor_);
  arm_timeout_check(live, config_.activity_poll);
}

void SessionManager::stop_timeout_watch(Live& live) { live.timeout_check.reset(); }

void SessionManager::arm_timeout_check(Live& live, milliseconds after) {
  if (!live.timeout_check) return;
  live.timeout_check->expires_after(after);
  std::string id = live.s.id;
  live.timeout_check->async_wait([this, id, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    check_timeouts(id);
  });
}

void SessionManager::check_timeouts(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  auto live = it->second;  // end_session may schedule the erase; keep it alive here
  Session& s = live->s;
  if (s.state != SessionState::running) return;
  milliseconds next = config_.activity_poll;
  auto activity = current_activity(*live);  // VM sessions: the guest agent's relay
  if (!activity) {
    // No report, no verdict: a session is never ended on missing evidence.
    if (!live->activity_warned) {
      spdlog::warn("session activity_unreadable session={} error={}", s.id,
                   log_quote(activity.error().str()));
      live->activity_warned = true;
    }
  } else {
    live->activity_warned = false;
    const int64_t now = deps_.clock.now_mono_ms();
    TimeoutVerdict v = timeout_verdict(*activity, {s.idle_timeout_s, s.disconnect_timeout_s}, now);
    if (!v.reason.empty()) {
      spdlog::info("session timed_out session={} user={} reason={} clients={} idle_timeout_s={} "
                   "disconnect_timeout_s={}",
                   s.id, s.user, v.reason, activity->clients, s.idle_timeout_s,
                   s.disconnect_timeout_s);
      end_session(*live, v.reason);
      return;
    }
    // Wake at the deadline if it comes before the next poll (a client may still come or go).
    next = std::min(next, std::max(milliseconds(10), milliseconds(v.next_check_ms - now)));
  }
  arm_timeout_check(*live, next);
}

ApiResult<std::vector<std::string>> SessionManager::set_user_timeouts(const std::string& user,
                                                                      const SessionTimeouts& t) {
  std::vector<std::string> changed;
  for (auto& [id, live] : sessions_) {
    Session& s = live->s;
    if (s.user != user || s.state == SessionState::ended) continue;
    s.idle_timeout_s = t.idle_s;
    s.disconnect_timeout_s = t.disconnect_s;
    // Persisted first: a restarted hostd re-adopts the session with the new values.
    if (auto r = deps_.store.save(s); !r) {
      spdlog::warn("session save_failed session={} error={}", s.id, log_quote(r.error().str()));
    }
    // A starting session is watched once it runs (launch); a running one is re-armed, so a
    // timeout that was "none" starts being checked and a removed one stops.
    if (s.state == SessionState::running) {
      stop_timeout_watch(*live);
      watch_timeouts(*live);
    }
    changed.push_back(id);
  }
  if (changed.empty()) return api_error(404, "no live session for user " + user);
  spdlog::info("session timeouts_changed user={} sessions={} idle_timeout_s={} "
               "disconnect_timeout_s={}",
               user, changed.size(), t.idle_s, t.disconnect_s);
  return changed;
}

}  // namespace appvirt::hostd
