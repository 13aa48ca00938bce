// Ending sessions and containers. Nothing a session made may outlive it: its processes (the
// session cgroup, the rdp cgroup), cgroups, sockets, X lock file, runtime directories and
// secret. Each step logs its failure and the others still run.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "session-host/hostd/session_manager.h"

namespace appvirt::hostd {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

void log_failure(const char* step, const std::string& id, const Result<void>& r) {
  if (!r) {
    spdlog::warn("session cleanup_failed step={} session={} error={}", step, id,
                 log_quote(r.error().str()));
  }
}

// Mount points at or below dir, deepest first. mountinfo escapes spaces as \040.
std::vector<std::string> mounts_below(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    std::string decoded;
    for (size_t i = 0; i < mount_point.size(); ++i) {
      if (mount_point[i] == '\\' && i + 3 < mount_point.size()) {
        decoded += static_cast<char>(std::stoi(mount_point.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        decoded += mount_point[i];
      }
    }
    if (decoded == dir || decoded.rfind(dir + "/", 0) == 0) out.push_back(decoded);
  }
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

}  // namespace

Result<void> remove_tree_safely(const std::string& dir) {
  if (dir.empty() || dir == "/") return fail("remove_tree_safely: refusing " + dir);
  for (const auto& m : mounts_below(dir)) ::umount2(m.c_str(), MNT_DETACH);
  if (!mounts_below(dir).empty()) {
    return fail("remove " + dir + ": still has mounts below it, left in place");
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return fail("remove_all(" + dir + ")", ec.value());
  return {};
}

void SessionManager::on_process_exit(const std::string& id, const std::string& which) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  auto live = it->second;
  if (live->s.state == SessionState::ended) return;
  if (live->s.state == SessionState::starting) {
    // The launch coroutine notices and fails the launch; ending here would race with it.
    if (live->pending_end.empty()) live->pending_end = which + " exited";
    return;
  }
  end_session(*live, end_reason_for(*live, which));
}

std::string SessionManager::end_reason_for(Live& live, const std::string& which) {
  Session& s = live.s;
  if (deps_.reaper && which == "app") {
    deps_.reaper->reap_now();
    if (auto st = deps_.reaper->status_of(s.app.pid)) s.exit_status = *st;
  }
  auto oom = deps_.cgroups.oom_kills(s.session_cgroup());
  if (oom && *oom > 0) return "oom-killed";
  if (which == "app") return "app-exited";
  return which + "-exited";
}

void SessionManager::end_session(Live& live, const std::string& reason) {
  Session& s = live.s;
  if (s.state == SessionState::ended) return;
  s.state = SessionState::ended;
  s.end_reason = reason;
  s.ended_at = deps_.clock.now_unix();
  live.app_watch.reset();
  live.xvfb_watch.reset();
  live.rdp_watch.reset();
  stop_timeout_watch(live);
  if (s.is_vm()) {
    end_vm(live, terminating_);  // vm_sessions.cc: power-off, overlay and session dir
  } else {
    teardown_resources(s);
  }
  if (live.display_reserved) {
    deps_.displays.release(s.display);
    live.display_reserved = false;
  }
  deps_.store.remove_secret(s.id);
  log_failure("persist", s.id, deps_.store.save(s));
  spdlog::info("session ended session={} user={} reason={}{}", s.id, s.user, reason,
               s.exit_status ? " status=" + log_quote(describe_wait_status(*s.exit_status)) : "");
  release_container(s.user, s.id);
  schedule_expiry(live);
}

void SessionManager::teardown_resources(const Session& s) {
  log_failure("kill_session", s.id, deps_.cgroups.kill_all(s.session_cgroup()));
  log_failure("kill_rdp", s.id, deps_.cgroups.kill_all(s.rdp_cgroup()));
  // Outside its cgroup only if it failed to join one; the start time guards against reuse.
  for (const ProcRef* p : {&s.rdp, &s.app, &s.xvfb}) {
    if (p->pid > 0 && proc_alive(*p)) ::kill(p->pid, SIGKILL);
  }
  log_failure("remove_session_cgroup", s.id, deps_.cgroups.remove(s.session_cgroup()));
  log_failure("remove_rdp_cgroup", s.id, deps_.cgroups.remove(s.rdp_cgroup()));
  // Empty parents: rmdir fails harmlessly while other sessions still use them.
  deps_.cgroups.remove_if_empty("appvirt/rdp");
  log_failure("remove_endpoint_dir", s.id, remove_tree_safely(endpoint_dir(s)));
  log_failure("remove_run_dir", s.id, remove_tree_safely(session_run_dir(s)));
  if (s.display > 0) {
    // Xvfb killed with SIGKILL leaves its socket and its lock file (in the container's /tmp).
    ::unlink(x_socket(s).c_str());
    auto c = containers_.find(s.user);
    if (c != containers_.end() && proc_alive(c->second.rec.init)) {
      std::string lock = "/proc/" + std::to_string(c->second.rec.init.pid) + "/root/tmp/.X" +
                         std::to_string(s.display) + "-lock";
      ::unlink(lock.c_str());
    }
  }
}

void SessionManager::release_container(const std::string& user, const std::string& id) {
  auto it = containers_.find(user);
  if (it == containers_.end()) return;
  if (it->second.sessions.erase(id) == 0) return;
  if (it->second.sessions.empty()) destroy_container(user);
}

void SessionManager::destroy_container(const std::string& user) {
  auto it = containers_.find(user);
  ProcRef init;
  if (it != containers_.end()) {
    init = it->second.rec.init;
    it->second.init_watch.reset();
    containers_.erase(it);
  }
  std::string cg = user_cgroup(user);
  log_failure("kill_container", user, deps_.cgroups.kill_all(cg));
  if (init.pid > 0 && proc_alive(init)) ::kill(init.pid, SIGKILL);
  if (deps_.reaper) deps_.reaper->reap_now();
  log_failure("remove_container_cgroup", user, deps_.cgroups.remove(cg));
  log_failure("remove_runtime_dir", user, remove_tree_safely(user_runtime(user)));
  deps_.store.remove_container(user);
  spdlog::info("container destroyed user={}", user);
}

void SessionManager::on_container_exit(const std::string& user) {
  auto it = containers_.find(user);
  if (it == containers_.end()) return;
  spdlog::warn("container init_exited user={} pid={}", user, it->second.rec.init.pid);
  std::vector<std::string> ids(it->second.sessions.begin(), it->second.sessions.end());
  for (const auto& id : ids) {
    auto s = sessions_.find(id);
    if (s == sessions_.end()) continue;
    auto live = s->second;
    if (live->s.state == SessionState::starting) {
      if (live->pending_end.empty()) live->pending_end = "container exited";
    } else {
      end_session(*live, "container-exited");
    }
  }
  // No running session left in it (or only starting ones, whose launch fails): clean up now
  // unless a launch still holds it.
  it = containers_.find(user);
  if (it != containers_.end() && it->second.sessions.empty()) destroy_container(user);
}

void SessionManager::schedule_expiry(Live& live) {
  live.expiry = std::make_unique<asio::steady_timer>(executor_);
  auto remaining = config_.ended_retention -
                   std::chrono::seconds(deps_.clock.now_unix() - live.s.ended_at);
  if (remaining < std::chrono::seconds(0)) remaining = std::chrono::seconds(0);
  live.expiry->expires_after(remaining);
  std::string id = live.s.id;
  live.expiry->async_wait([this, id, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second->s.state != SessionState::ended) return;
    sessions_.erase(it);
    deps_.store.remove_session(id);
  });
}

void SessionManager::terminate_all(const std::string& reason) {
  terminating_ = true;
  std::vector<std::shared_ptr<Live>> all;
  for (auto& [id, live] : sessions_) all.push_back(live);
  for (auto& live : all) end_session(*live, reason);
  std::vector<std::string> users;
  for (auto& [user, c] : containers_) users.push_back(user);
  for (auto& u : users) destroy_container(u);
}

void SessionManager::detach() {
  for (auto& [id, live] : sessions_) {
    live->app_watch.reset();
    live->xvfb_watch.reset();
    live->rdp_watch.reset();
    live->vm_watch.reset();
    live->expiry.reset();
    stop_timeout_watch(*live);
  }
  for (auto& [user, c] : containers_) c.init_watch.reset();
  for (auto& [user, timer] : user_locks_) timer->cancel();
}

}  // namespace appvirt::hostd
