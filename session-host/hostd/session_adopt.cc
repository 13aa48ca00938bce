// Re-adoption after a hostd restart. Sessions outlive hostd (nothing it starts is in its
// process group); the new hostd finds them in the state directory and keeps serving those whose
// processes are still the same processes (pid + start time). The rest are ended as "lost" and
// cleaned up, and containers left without sessions are destroyed.
#include "common/log.h"
#include "session-host/hostd/session_manager.h"

namespace appvirt::hostd {

void SessionManager::adopt() {
  std::vector<std::string> errors;
  for (ContainerRecord& rec : deps_.store.load_containers(&errors)) {
    Container& c = containers_[rec.user];
    c.rec = rec;
    std::string user = rec.user;
    auto w = PidWatch::open(executor_, rec.init,
                            [this, user, alive = alive_] { if (*alive) on_container_exit(user); });
    if (w) c.init_watch = std::move(*w);
  }
  SessionStore::Loaded loaded = deps_.store.load_sessions();
  errors.insert(errors.end(), loaded.errors.begin(), loaded.errors.end());
  for (const auto& e : errors) spdlog::warn("adopt unreadable_state error={}", log_quote(e));

  std::vector<std::shared_ptr<Live>> lost;
  for (Session& s : loaded.sessions) {
    auto live = std::make_shared<Live>();
    live->s = s;
    sessions_[s.id] = live;
    if (s.state == SessionState::ended) {
      schedule_expiry(*live);
      continue;
    }
    if (s.is_vm()) {
      // No container, display or endpoint on this host: the VM is the whole session.
      if (!adopt_vm(*live)) lost.push_back(live);
      continue;
    }
    auto c = containers_.find(s.user);
    bool ok = s.state == SessionState::running && c != containers_.end() &&
              c->second.init_watch && proc_alive(s.app) && proc_alive(s.xvfb) &&
              proc_alive(s.rdp) && deps_.displays.reserve(s.display);
    if (ok) {
      live->display_reserved = true;
      live->app_watch = watch(s.id, s.app, "app");
      live->xvfb_watch = watch(s.id, s.xvfb, "xvfb");
      live->rdp_watch = watch(s.id, s.rdp, "rdp");
      c->second.sessions.insert(s.id);
      watch_timeouts(*live);
      spdlog::info("adopt session_adopted session={} user={} display=:{}", s.id, s.user, s.display);
    } else {
      lost.push_back(live);
    }
  }
  // Lost sessions end after all live ones are registered, so a user's container that still has
  // a live session is not destroyed along with a lost one.
  for (auto& live : lost) {
    spdlog::warn("adopt session_lost session={} user={}", live->s.id, live->s.user);
    end_session(*live, "lost");
  }
  std::vector<std::string> empty;
  for (auto& [user, c] : containers_) {
    if (c.sessions.empty()) empty.push_back(user);
  }
  for (const auto& user : empty) destroy_container(user);
}

}  // namespace appvirt::hostd
